"""Configuration from SSM Parameter Store (boto3), SecureStrings decrypted in memory only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from nightcopy.engine.table_groups import TableGroup, parse_table_groups
from nightcopy.errors import ConfigError
from nightcopy.secrets import register_secret

PARAMETERS = ("source_dsn", "target_dsn", "table_groups", "options",
              "slack_webhook_url", "slack_bot_token", "slack_channel")
# What the worker (`nightcopy copy --ssm-prefix`) reads: its IAM role in template.yaml may read
# and decrypt exactly these, never the Slack secrets (GetParameters fails as a whole when one of
# the names is not allowed, so the worker must not ask for the others).
WORKER_PARAMETERS = ("source_dsn", "target_dsn", "table_groups", "options")


@dataclass
class SsmConfig:
    prefix: str
    source_dsn: str | None = None
    target_dsn: str | None = None
    table_groups: list[TableGroup] | None = None
    options: dict = field(default_factory=dict)
    slack_webhook_url: str | None = None
    slack_bot_token: str | None = None
    slack_channel: str | None = None


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/")


def _client(client=None):
    if client is not None:
        return client
    import boto3
    import botocore.exceptions

    try:
        return boto3.client("ssm")
    except botocore.exceptions.NoRegionError:
        raise ConfigError("no AWS region is set for SSM: set AWS_REGION or AWS_DEFAULT_REGION") from None


def load_config(prefix: str, *, client=None, required: tuple[str, ...] = ("source_dsn", "target_dsn"),
                parameters: tuple[str, ...] = PARAMETERS) -> SsmConfig:
    """Read nightcopy's PARAMETERS under PREFIX (one GetParameters call, decrypted)."""
    import botocore.exceptions

    prefix = normalise_prefix(prefix)
    ssm = _client(client)
    names = [f"{prefix}/{p}" for p in parameters]
    try:
        response = ssm.get_parameters(Names=names, WithDecryption=True)
    except botocore.exceptions.NoCredentialsError:
        raise ConfigError("no AWS credentials to read SSM parameters under "
                          f"{prefix}: configure credentials or pass --source/--target") from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDeniedException", "AccessDenied", "403") or status == 403:
            raise ConfigError(f"access to the SSM parameters under {prefix} was denied: allow "
                              f"ssm:GetParameters on {prefix}/* (and kms:Decrypt for SecureStrings)"
                              ) from None
        raise ConfigError(f"reading SSM parameters under {prefix} failed ({code})") from None
    except botocore.exceptions.EndpointConnectionError:
        raise ConfigError("cannot reach the SSM endpoint: check the network (NAT or a VPC "
                          "endpoint for ssm)") from None
    values = {p["Name"][len(prefix) + 1:]: p["Value"] for p in response.get("Parameters", [])}
    for key in ("source_dsn", "target_dsn", "slack_webhook_url", "slack_bot_token"):
        register_secret(values.get(key))
    missing = [name for name in required if name not in values]
    if missing:
        raise ConfigError(
            f"SSM parameter {prefix}/{missing[0]} does not exist"
            + (f" (nor {', '.join(prefix + '/' + m for m in missing[1:])})" if missing[1:] else "")
            + f": create it with aws ssm put-parameter --name {prefix}/{missing[0]} ...")
    cfg = SsmConfig(prefix=prefix, source_dsn=values.get("source_dsn"),
                    target_dsn=values.get("target_dsn"),
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
        cfg.options = options
    return cfg
