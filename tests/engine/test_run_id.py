"""One run id maker for the worker, `nightcopy run` and the demo."""

from __future__ import annotations

import re

import pytest

from nightcopy.engine import invocation
from nightcopy.engine.run_id import EXECUTION_NAME, new_run_id
from nightcopy.ops import local_run


def test_run_ids_are_step_functions_names_unique_and_prefixed():
    ids = [new_run_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(EXECUTION_NAME.fullmatch(i) for i in ids)
    assert re.fullmatch(r"run-\d{8}T\d{6}Z-[0-9a-f]{8}", ids[0])
    assert local_run.new_run_id().startswith("local-")
    assert re.fullmatch(r"demo-\d{8}T\d{6}Z-[0-9a-f]{8}", local_run.new_run_id("demo"))


def test_there_is_one_implementation():
    assert invocation.new_run_id is new_run_id
    assert invocation.CopyOptions("s", "t", "x").run_id.startswith("run-")


@pytest.mark.parametrize("prefix", ["", "a b", "x" * 41, "nightly:1"])
def test_a_prefix_that_would_break_the_name_is_refused(prefix):
    with pytest.raises(ValueError):
        new_run_id(prefix)
