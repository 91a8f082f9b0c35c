"""Issue 12, "what prod runs": template.yaml's Rules refuse a production stack whose worker
follows a branch. CloudFormation evaluates Rules before it creates or changes anything; moto
and the offline linters do not, so the Rule functions the template uses (Fn::And, Fn::Equals,
Fn::Not, Fn::Contains, Ref) are evaluated here against the parameters a deploy would pass."""

from __future__ import annotations

import importlib.util

import pytest
from aws_harness import ROOT

spec = importlib.util.spec_from_file_location("asl_substitute", ROOT / "scripts" / "asl_substitute.py")
asl_substitute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(asl_substitute)
Tag = asl_substitute.Tag

TEMPLATE = asl_substitute.load_template(ROOT / "template.yaml")
PARAMETERS = TEMPLATE["Parameters"]


def _evaluate(node, values: dict[str, str]):
    """A Rule expression's value (short !Tags or long Fn:: keys), for the functions in use."""
    if isinstance(node, Tag):
        name, args = node.tag, node.value
    elif isinstance(node, dict) and len(node) == 1:
        [(key, args)] = node.items()
        name = key.removeprefix("Fn::")
    elif isinstance(node, list):
        return [_evaluate(item, values) for item in node]
    else:
        return node
    if name == "Ref":
        return values[args]
    args = [_evaluate(a, values) for a in args]
    if name == "Equals":
        return args[0] == args[1]
    if name == "Not":
        return not args[0]
    if name == "And":
        return all(args)
    if name == "Or":
        return any(args)
    if name == "Contains":
        return args[1] in args[0]
    raise AssertionError(f"Rule function {name} not understood by this test")


def refusals(**given: str) -> list[str]:
    """The AssertDescription of every Rule the parameters break (defaults filled in)."""
    values = {name: str(p.get("Default", "")) for name, p in PARAMETERS.items()}
    values.update(given)
    for name, value in given.items():
        allowed = PARAMETERS[name].get("AllowedValues")
        assert allowed is None or value in allowed, (name, value)
    out = []
    for rule in TEMPLATE.get("Rules", {}).values():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], values):
            continue
        out += [a["AssertDescription"] for a in rule["Assertions"]
                if not _evaluate(a["Assert"], values)]
    return out


URL = "https://github.com/example/nightcopy"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/nightcopy@sha256:" + "0" * 64


@pytest.mark.parametrize("version", ["main", ""])
def test_prod_refuses_a_git_worker_that_follows_main(version):
    [message] = refusals(Stage="prod", WorkerSource="git", SourceRepositoryUrl=URL,
                         SourceVersion=version)
    assert "SourceVersion" in message and "WorkerSource=image" in message
    assert "sha256" in message


def test_prod_is_the_default_stage():
    """A stack that does not say it is a test stack is held to prod's rule."""
    assert PARAMETERS["Stage"]["Default"] == "prod"
    assert refusals(SourceRepositoryUrl=URL) != []  # defaults: git at main


@pytest.mark.parametrize("given", [
    {"Stage": "prod", "WorkerSource": "git", "SourceRepositoryUrl": URL, "SourceVersion": "v0.3.0"},
    {"Stage": "prod", "WorkerSource": "git", "SourceRepositoryUrl": URL,
     "SourceVersion": "9fceb02d0ae598e95dc970b74767f19372d61af8"},
    {"Stage": "prod", "WorkerSource": "image", "WorkerImage": IMAGE},
    {"Stage": "dev", "WorkerSource": "git", "SourceRepositoryUrl": URL, "SourceVersion": "main"},
])
def test_pinned_prod_and_dev_stacks_deploy(given):
    assert refusals(**given) == []


def test_samconfig_says_which_stage_each_environment_is():
    import tomllib

    cfg = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "Stage=dev" in cfg["default"]["deploy"]["parameters"]["parameter_overrides"]
    assert "Stage=prod" in cfg["prod"]["deploy"]["parameters"]["parameter_overrides"]
