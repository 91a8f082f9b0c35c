"""Configuration in SSM Parameter Store: read under a prefix (SecureStrings decrypted in memory
only), and one parameter overwritten (`nightcopy plan --write-ssm`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nightcopy.aws.errors import Problem, aws_call
from nightcopy.aws.errors import client as aws_client
from nightcopy.engine.table_groups import TableGroup, parse_table_groups
from nightcopy.errors import ConfigError
from nightcopy.options import Place, check_options
from nightcopy.secrets import register_secret

PARAMETERS = ("source_dsn", "target_dsn", "table_groups", "options", "mask_key",
              "slack_webhook_url", "slack_bot_token", "slack_channel")
# What the worker (`nightcopy copy --ssm-prefix`) reads: its IAM role in template.yaml may read
# and decrypt exactly these, never the Slack secrets (GetParameters fails as a whole when one of
# the names is not allowed, so the worker must not ask for the others).
WORKER_PARAMETERS = ("source_dsn", "target_dsn", "table_groups", "options", "mask_key")


@dataclass
class SsmConfig:
    prefix: str
    source_dsn: str | None = None
    target_dsn: str | None = None
    mask_key: str | None = None  # the key of "hmac" column masks (SecureString; optional)
    table_groups: list[TableGroup] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    slack_webhook_url: str | None = None
    slack_bot_token: str | None = None
    slack_channel: str | None = None


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/")


# The worker's messages for reading its configuration: they name the flags that avoid SSM and
# the permissions the role needs (the defaults in nightcopy.aws.errors say less).
_READ_MESSAGES = {
    Problem.NO_CREDENTIALS: "no AWS credentials to read SSM parameters under {prefix}: "
                            "configure credentials or pass --source/--target",
    Problem.ACCESS_DENIED: "access to the SSM parameters under {prefix} was denied: allow "
                           "ssm:GetParameters on {prefix}/* (and kms:Decrypt for SecureStrings)",
    Problem.UNREACHABLE: "cannot reach the SSM endpoint: check the network (NAT or a VPC "
                         "endpoint for ssm)",
    Problem.REFUSED: "reading SSM parameters under {prefix} failed ({code})",
    Problem.NOT_FOUND: "reading SSM parameters under {prefix} failed ({code})",
}


def load_config(prefix: str, *, client: Any = None,
                required: tuple[str, ...] = ("source_dsn", "target_dsn"),
                parameters: tuple[str, ...] = PARAMETERS) -> SsmConfig:
    """Read nightcopy's PARAMETERS under PREFIX (one GetParameters call, decrypted)."""
    prefix = normalise_prefix(prefix)
    ssm = client or aws_client("ssm", _READ_MESSAGES, reading_config=True, prefix=prefix)
    names = [f"{prefix}/{p}" for p in parameters]
    with aws_call(f"reading SSM parameters under {prefix}", "ssm", _READ_MESSAGES,
                  reading_config=True, prefix=prefix):
        response = ssm.get_parameters(Names=names, WithDecryption=True)
    values = {p["Name"][len(prefix) + 1:]: p["Value"] for p in response.get("Parameters", [])}
    for key in ("source_dsn", "target_dsn", "mask_key", "slack_webhook_url", "slack_bot_token"):
        register_secret(values.get(key))
    missing = [name for name in required if name not in values]
    if missing:
        raise ConfigError(
            f"SSM parameter {prefix}/{missing[0]} does not exist"
            + (f" (nor {', '.join(prefix + '/' + m for m in missing[1:])})" if missing[1:] else "")
            + f": create it with aws ssm put-parameter --name {prefix}/{missing[0]} ...")
    cfg = SsmConfig(prefix=prefix, source_dsn=values.get("source_dsn"),
                    target_dsn=values.get("target_dsn"), mask_key=values.get("mask_key"),
                    slack_webhook_url=values.get("slack_webhook_url"),
                    slack_bot_token=values.get("slack_bot_token"),
                    slack_channel=values.get("slack_channel"))
    if "table_groups" in values:
        try:
            cfg.table_groups = parse_table_groups(values["table_groups"])
        except ConfigError as exc:
            raise ConfigError(f"SSM parameter {prefix}/table_groups: {exc}") from None
    if "options" in values:
        try:
            options = json.loads(values["options"])
        except json.JSONDecodeError:
            raise ConfigError(f"SSM parameter {prefix}/options is not valid JSON: it must be an "
                              'object like {"jobs": 4, "strategy": "swap"}') from None
        if not isinstance(options, dict):
            raise ConfigError(f"SSM parameter {prefix}/options must be a JSON object")
        # Checked here, once, for every reader (copy, run, validate, plan): a value the worker
        # would refuse must not pass `nightcopy validate` or `nightcopy run`.
        cfg.options = check_options(options, f"SSM parameter {prefix}/options", Place.SSM)
    return cfg


def overwrite_parameter(name: str, value: str, *, client: Any = None) -> str | None:
    """Overwrite the parameter NAME with VALUE, keeping its type (a SecureString stays one);
    returns the old value, or None when it did not exist."""
    ssm = client or aws_client("ssm")
    old_value: str | None = None
    old_type, old_tier = "String", "Standard"
    with aws_call(f"cannot update SSM parameter {name}", "ssm",
                  {Problem.REFUSED: "cannot update SSM parameter {name}: {error}",
                   Problem.FAILED: "cannot update SSM parameter {name}: {error}",
                   Problem.ACCESS_DENIED: "cannot update SSM parameter {name}: access denied: "
                                          "allow ssm:GetParameter, ssm:DescribeParameters and "
                                          "ssm:PutParameter on it ({code})"},
                  name=name):
        try:
            param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
            old_value, old_type = param["Value"], param.get("Type", "String")
            described = ssm.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Values": [name]}]
            )["Parameters"]
            if described:
                old_tier = described[0].get("Tier", "Standard")
        except ssm.exceptions.ParameterNotFound:
            pass
        # A Standard parameter holds 4 KB; an Advanced one cannot be downgraded again.
        tier = "Advanced" if len(value.encode()) > 4096 or old_tier == "Advanced" else "Standard"
        ssm.put_parameter(Name=name, Value=value, Type=old_type, Overwrite=True, Tier=tier)
    return old_value
