"""What the operator commands print, from the renderers (no database): user text is never taken
as rich markup, and progress does not look like failure."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from nightcopy.cli import progress
from nightcopy.cli.render import console, render_timings, render_toml_groups
from nightcopy.ops.history import GroupTiming, RunTimings, TableTiming


def _captured(render, *args, **kwargs) -> str:
    con = console()
    with con.capture() as cap:
        render(con, *args, **kwargs)
    return cap.get()


def test_toml_snippet_heading_keeps_its_double_brackets():
    plan = SimpleNamespace(proposed=[SimpleNamespace(name="g1", tables=["public.a"])])
    out = _captured(render_toml_groups, plan)
    assert "replace the [[groups]] sections with:" in out


def test_table_names_and_errors_with_brackets_are_printed_as_they_are():
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    weird = 'public."x[bold]y[/bold]"'
    t = RunTimings(
        run_id="r1", source="ledger",
        groups=[GroupTiming("g1", "failed", at, at, 2, 1, 10, 100, 3.0)],
        tables=[TableTiming(weird, "g1", "copied", 10, 100, 2.0, finished_at=at),
                TableTiming('public."[red]z"', "g1", "failed", None, None, 1.0,
                            error="bad value [x] in column [y]")])
    out = _captured(render_timings, t)
    assert weird in out and 'public."[red]z"' in out  # in the table and on the critical path
    assert "bad value [x] in column [y]" in out


def test_progress_bars_are_not_red_while_all_is_well():
    live = progress.LiveProgress(console())
    bar = next(c for c in live.progress.columns if isinstance(c, progress.BarColumn))
    for style in (bar.complete_style, bar.finished_style, bar.pulse_style):
        assert "red" not in str(style) and str(style) != "bar.complete", style
