#!/usr/bin/env python3
"""Print statemachines/*.asl.json with template.yaml's DefinitionSubstitutions applied.

Step Functions replaces `${Name}` in the definition text with the DefinitionSubstitutions values
at deploy time; linters and tests must see the definition after that step. Values that are
intrinsic functions (resolved only in an account) become sample strings; a `!Ref` to a parameter
uses the parameter's default, so the numeric placeholders stay valid integers.

Fails when the ASL has a placeholder the template does not substitute, or the other way round.
Usage: asl_substitute.py TEMPLATE OUT_DIR  (writes OUT_DIR/<name>.asl.json per state machine)
Needs only PyYAML.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
SAMPLES = {"Arn": "arn:aws:lambda:eu-west-1:123456789012:function:sample"}


class Tag:
    def __init__(self, tag: str, value: object):
        self.tag, self.value = tag, value


class CfnLoader(yaml.SafeLoader):
    """Keeps CloudFormation short-form tags (!Ref, !Sub, ...) as Tag objects."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    if isinstance(node, yaml.ScalarNode):
        value: object = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


CfnLoader.add_multi_constructor("!", _any_tag)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def sample_value(key: str, value: object, params: dict) -> str:
    if isinstance(value, Tag) and value.tag == "Ref" and value.value == "AWS::Partition":
        return "aws"  # the commercial partition, as statelint and the moto tests expect
    if isinstance(value, Tag) and value.tag == "Ref" and value.value in params:
        default = params[value.value].get("Default")
        return str(default) if default not in (None, "") else f"sample-{key}"
    if isinstance(value, Tag) and value.tag == "Join":
        sep, parts = value.value
        return sep.join(sample_value(key, p, params) for p in parts)
    if isinstance(value, Tag) and value.tag == "GetAtt":
        return SAMPLES["Arn"]
    if isinstance(value, Tag):
        return f"sample-{key}"
    return str(value)


def substituted_definitions(template_path: Path) -> dict[str, str]:
    """Logical id -> the definition text after substitution (validated as JSON)."""
    template = load_template(template_path)
    params = template.get("Parameters", {})
    out: dict[str, str] = {}
    for logical_id, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = res["Properties"]
        if "DefinitionUri" not in props:
            raise SystemExit(f"{logical_id}: inline Definition; keep the ASL in statemachines/")
        text = (template_path.parent / props["DefinitionUri"]).read_text()
        subs = {k: sample_value(k, v, params)
                for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
        used = set(PLACEHOLDER.findall(text))
        if used - set(subs):
            raise SystemExit(f"{logical_id}: no substitution for {sorted(used - set(subs))}")
        if set(subs) - used:
            raise SystemExit(f"{logical_id}: substitutions never used: {sorted(set(subs) - used)}")
        text = PLACEHOLDER.sub(lambda m, subs=subs: subs[m.group(1)], text)
        json.loads(text)
        out[logical_id] = text
    return out


def main(argv: list[str]) -> int:
    template, out_dir = Path(argv[1]), Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    for logical_id, text in substituted_definitions(template).items():
        (out_dir / f"{logical_id}.asl.json").write_text(text)
        print(out_dir / f"{logical_id}.asl.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
