"""The per-run part of a state machine execution's input, as the worker and `nightcopy start` see it.

Contract (docs/aws.md, "Execution input"): the input may carry
- `run_id`: the run the workers record in their ledgers and report under (default: the
  execution's name). A finishing execution carries the night's original run id, so every worker
  resumes that run and skips the tables it already copied.
- `groups`: names of table_groups entries to copy (default: every group). Only names travel: the
  table lists are re-read from SSM `table_groups`.
- `options`: worker options for this run only (`{"strategy": "truncate"}`, a `trust` list, ...),
  checked by the one option registry exactly as SSM `PREFIX/options` is (the same refusals:
  unknown options, identity options such as DSNs or tables). They rank above SSM `options`.

The state machine hands `options` to each build as one JSON variable, NIGHTCOPY_EXECUTION_OPTIONS
(the guard policy in template.yaml allows exactly the state machine's variables).
"""

from __future__ import annotations

import json
import os
from typing import Any

from nightcopy.errors import ConfigError
from nightcopy.options import Place, check_options, name_problem

EXECUTION_OPTIONS_VARIABLE = "NIGHTCOPY_EXECUTION_OPTIONS"
ORIGIN = "execution input options"


def check_execution_options(values: object) -> dict[str, Any]:
    """`options` of an execution's input, checked (and converted) as SSM options are."""
    return check_options(values, ORIGIN, Place.SSM)


def execution_options_from_environment() -> dict[str, Any]:
    """The options the state machine passed this build ({} when none)."""
    raw = os.environ.get(EXECUTION_OPTIONS_VARIABLE, "").strip()
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{EXECUTION_OPTIONS_VARIABLE} is not valid JSON: it must be an "
                          "object of option: value (the execution input's options)") from None
    return check_execution_options(values)


def check_group_names(names: object, configured: list[str]) -> list[str]:
    """`groups` of an execution's input: a non-empty list of configured group names."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("execution input groups must be a non-empty list of group names")
    for name in names:
        problem = name_problem(name)
        if problem is not None:
            raise ConfigError(f"execution input groups: {name!r} {problem}")
        if name not in configured:
            raise ConfigError(f"execution input groups: {name!r} is not in table_groups "
                              f"(configured: {', '.join(configured) or 'none'})")
    if len(set(names)) != len(names):
        raise ConfigError("execution input groups names a group twice")
    return list(names)
