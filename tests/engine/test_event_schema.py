"""The event declaration and the emitter's check against it (no database needed)."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from nightcopy.engine import event_schema as ev
from nightcopy.engine import events as events_module
from nightcopy.engine.events import EventSchemaError, EventWriter
from nightcopy.engine.table_job import TableOutcome

ENGINE = Path(events_module.__file__).parent


def writer(strict: bool) -> tuple[EventWriter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return EventWriter("nightly-2026-11-25", "g1", out, err, strict=strict), out, err


def test_an_undeclared_field_fails_in_strict_mode_and_is_not_written():
    w, out, _ = writer(strict=True)
    with pytest.raises(EventSchemaError, match="table_copied: undeclared field 'colour'"):
        w.emit("table_copied", **TableOutcome("public.a", "copied").event_fields(),
               colour="red")
    assert out.getvalue() == ""


@pytest.mark.parametrize(("event", "fields", "problem"), [
    ("table_copyed", {"table": "public.a"}, "undeclared event 'table_copyed'"),
    ("table_progress", {"table": "public.a", "bytes": 10}, "required field 'seconds' is missing"),
    ("table_progress", {"table": "public.a", "bytes": "10", "seconds": 1.0},
     "field 'bytes' is str, declared integer"),
    ("table_progress", {"table": "public.a", "bytes": True, "seconds": 1.0},
     "field 'bytes' is bool, declared integer"),
    ("table_progress", {"table": None, "bytes": 1, "seconds": 1.0}, "field 'table' is null"),
    ("table_progress", {"bytes": 1, "table": "public.a", "seconds": 1.0},
     "fields out of the declared order"),
    ("run_summary", {"status": "done", "tables": 0, "failed": 0, "rows": 0, "bytes": 0,
                     "seconds": 0.0, "failed_tables": []}, "field 'status' is 'done'"),
    ("run_summary", {"status": "failed", "tables": 1, "failed": 1, "rows": 0, "bytes": 0,
                     "seconds": 0.0, "failed_tables": [1]}, "field 'failed_tables' holds a"),
    ("warning", {"table": None, "message": "m", "run_id": "x"}, "belongs to the envelope"),
])
def test_each_kind_of_mismatch_is_caught(event, fields, problem):
    w, _, _ = writer(strict=True)
    with pytest.raises(EventSchemaError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        w.emit(event, **fields)


def test_in_production_a_mismatch_warns_once_on_stderr_and_writes_the_line_as_emitted():
    w, out, err = writer(strict=False)
    for _ in range(3):
        w.emit("table_progress", table="public.a", bytes=1, seconds=1.0, colour="red")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["colour"] == "red"
    assert err.getvalue().count("event schema violation") == 1
    assert "undeclared field 'colour'" in err.getvalue()


def test_strict_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("NC_STRICT_EVENTS", "1")
    assert EventWriter("r", None).strict
    monkeypatch.delenv("NC_STRICT_EVENTS")
    assert not EventWriter("r", None).strict


def test_the_emitted_bytes_are_unchanged(monkeypatch):
    """The README's table_copied line, byte for byte: names, order, number formats."""
    monkeypatch.setattr(events_module.time, "time", lambda: 1795635269.1244)
    w, out, _ = writer(strict=True)
    o = TableOutcome("public.orders", "copied", rows=10000, bytes=862247, seconds=0.1514,
                     copy_seconds=0.052, index_seconds=0.019, analyze_seconds=0.035)
    w.emit("table_copied", **o.event_fields())
    w.warn("careful", "public.orders")
    assert out.getvalue().splitlines() == [
        '{"event": "table_copied", "run_id": "nightly-2026-11-25", "group": "g1", "table": '
        '"public.orders", "rows": 10000, "bytes": 862247, "seconds": 0.151, "copy_seconds": '
        '0.052, "index_seconds": 0.019, "analyze_seconds": 0.035, "lock_wait_seconds": 0.0, '
        '"format": "binary", "attempts": 1, "ts": 1795635269.124}',
        '{"event": "warning", "run_id": "nightly-2026-11-25", "group": "g1", "table": '
        '"public.orders", "message": "careful", "ts": 1795635269.124}',
    ]
    assert all(ev.line_problems(json.loads(line)) == [] for line in out.getvalue().splitlines())


def test_table_outcomes_fit_table_copied_and_table_failed():
    copied = TableOutcome("public.a", "copied", rows=3)
    failed = TableOutcome("public.a", "failed", error="boom", attempts=2, format="text")
    assert ev.event_problems(ev.TABLE_COPIED, copied.event_fields()) == []
    assert ev.event_problems(ev.TABLE_FAILED, failed.event_fields()) == []
    assert ev.event_problems(ev.TABLE_FAILED, copied.event_fields()) == [
        "table_failed: required field 'error' is missing"]


def _emit_calls() -> list[tuple[str, int, str, set[str]]]:
    """(file, line, event, keyword names) of every .emit("literal", ...) in the engine."""
    calls = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "emit" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names = {k.arg for k in node.keywords if k.arg is not None}
                calls.append((path.name, node.lineno, node.args[0].value, names))
    return calls


def test_every_emit_in_the_engine_names_a_declared_event_and_fields():
    calls = _emit_calls()
    assert len(calls) >= 8, calls  # the scan finds the emitters at all
    for file, line, event, names in calls:
        assert event in ev.EVENTS, f"{file}:{line}: undeclared event {event!r}"
        declared = {f.name for f in ev.EVENTS[event].fields}
        assert names <= declared, f"{file}:{line}: {event}: undeclared {names - declared}"
    assert {c[2] for c in calls} | {ev.WARNING} == set(ev.EVENTS), "a declared event is unused"
