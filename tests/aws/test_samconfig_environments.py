"""Every samconfig.toml environment deploys the first time with the one command docs/aws.md
gives (`sam deploy --guided [--config-env ENV]`): its section supplies every template parameter
that has no default, the template's Rules pass once the one value the guided run asks for is
typed, the network comes from SSM names under the environment's own prefix (never ids), and a
trial (dev) stack does not copy every night."""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
from aws_harness import ROOT
from test_template_prod_pin import PARAMETERS, refusals

CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
# What the first guided deploy of each environment asks the operator to type (docs/aws.md).
TYPED_AT_FIRST_DEPLOY = {
    "default": {"SourceRepositoryUrl": "https://github.com/example/nightcopy"},
    "prod": {"WorkerImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/nightcopy@sha256:"
                            + "0" * 64},
}
NETWORK = ("VpcId", "SubnetIds", "SecurityGroupIds")


def overrides(env: str) -> dict[str, str]:
    given = CONFIG[env]["deploy"]["parameters"]["parameter_overrides"]
    items = given if isinstance(given, list) else shlex.split(given)
    pairs = [item.split("=", 1) for item in items]
    out: dict = {k: v.strip('"') for k, v in pairs}
    for k, v in out.items():  # numbers with AllowedValues (LogRetentionDays) as YAML has them
        allowed = (PARAMETERS.get(k) or {}).get("AllowedValues") or [""]
        if isinstance(allowed[0], int):
            out[k] = int(v)
    return out


@pytest.mark.parametrize("env", ["default", "prod"])
def test_each_environment_supplies_every_parameter_without_a_default(env):
    given = overrides(env)
    unknown = set(given) - set(PARAMETERS)
    assert not unknown, unknown  # a typo would fail the deploy
    required = {name for name, p in PARAMETERS.items() if "Default" not in p}
    assert required <= set(given), required - set(given)


@pytest.mark.parametrize("env", ["default", "prod"])
def test_each_environment_passes_the_rules_with_its_first_guided_value(env):
    given = overrides(env)
    typed = TYPED_AT_FIRST_DEPLOY[env]
    assert refusals(**given, **typed) == []
    # and without it the deploy stops with a message naming exactly that parameter
    [message] = refusals(**given)
    assert all(name in message for name in typed)
    docs = (ROOT / "docs" / "aws.md").read_text()
    for name in typed:
        assert name in docs


@pytest.mark.parametrize("env", ["default", "prod"])
def test_network_comes_from_ssm_names_under_the_environment_prefix(env):
    given = overrides(env)
    prefix = given["SsmPrefix"]
    for name in NETWORK:
        assert PARAMETERS[name]["Type"].startswith("AWS::SSM::Parameter::Value<"), name
        assert given[name].startswith(prefix + "/"), (name, given[name])
    blob = (ROOT / "samconfig.toml").read_text()
    assert not re.search(r"\b(vpc|subnet|sg)-[0-9a-f]{8,}", blob)  # names, never ids


def test_dev_starts_disabled_and_prod_runs_the_pinned_image():
    dev, prod = overrides("default"), overrides("prod")
    assert dev["Stage"] == "dev" and dev["ScheduleState"] == "DISABLED"
    assert prod["Stage"] == "prod" and prod["ScheduleState"] == "ENABLED"
    assert prod["WorkerSource"] == "image"
    assert dev["SsmPrefix"] != prod["SsmPrefix"]
    assert CONFIG["default"]["global"]["parameters"]["stack_name"] != \
        CONFIG["prod"]["global"]["parameters"]["stack_name"]
