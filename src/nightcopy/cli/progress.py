"""Live progress of `nightcopy run`: a rich progress display on a terminal, plain lines elsewhere.

Both are observers of nightcopy.ops.local_run.run_groups; they only read the GroupState objects the run
keeps up to date from the workers' JSON lines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from nightcopy.cli.render import (
    SECTION,
    Cell,
    Col,
    fitted_table,
    fmt_bytes,
    fmt_count,
    fmt_rate,
    fmt_seconds,
    status_text,
)


def _state(task: Task):
    return task.fields["state"]


class TablesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        g = _state(task)
        total = "?" if g.total is None else str(g.total)
        text = Text(f"{g.done}/{total} tables")
        if g.failed:
            text.append(f" {g.failed} failed", style="bold red")
        return text


class RowsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{fmt_count(_state(task).rows)} rows", justify="right")


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        g = _state(task)
        return Text(fmt_rate(g.live_bytes, g.elapsed), justify="right")


class CurrentColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        g = _state(task)
        if g.status == "running":
            return Text(g.current or "", style="cyan", overflow="ellipsis", no_wrap=True)
        return status_text(g.status)


# rich's default bar colour is a red-pink that reads as failure while all is well: progress is
# cyan, a finished group green; a failure shows in the tables column ("1 failed", red).
BAR_COMPLETE, BAR_FINISHED = "cyan", "green"


class LiveProgress:
    """One line per group: name, bar, tables done/total, rows, MB/s, current table, elapsed."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(bar_width=24, complete_style=BAR_COMPLETE, finished_style=BAR_FINISHED,
                      pulse_style=BAR_COMPLETE),
            TablesColumn(), RowsColumn(), RateColumn(), TimeElapsedColumn(), CurrentColumn(),
            console=console, refresh_per_second=4,
        )
        self.tasks: dict[str, TaskID] = {}

    def started(self, run_id, groups) -> None:
        self.console.print(Text.assemble("run id ", (str(run_id), "bold"), f": {len(groups)} groups"))
        for g in groups:
            self.tasks[g.name] = self.progress.add_task(g.name, total=g.total, start=False,
                                                        state=g)
        self.progress.start()

    def group_started(self, group) -> None:
        self.progress.start_task(self.tasks[group.name])

    def event(self, group, event) -> None:
        self.progress.update(self.tasks[group.name], completed=group.done + group.failed,
                             total=group.total)
        if event.get("event") == "table_failed":
            self.progress.console.print(Text(
                f"[{group.name}] {event.get('table')} failed: {event.get('error')}", style="red"))

    def group_finished(self, group) -> None:
        task = self.tasks[group.name]
        total = group.total if group.total is not None else group.done + group.failed
        self.progress.update(task, completed=group.done + group.failed, total=total)
        self.progress.stop_task(task)

    def finished(self) -> None:
        self.progress.stop()


class PlainProgress:
    """One line per event, for logs and pipes (no cursor movement, no colours)."""

    def __init__(self, console: Console):
        self.console = console
        self.t0 = time.monotonic()

    def _line(self, text: str) -> None:
        stamp = fmt_seconds(time.monotonic() - self.t0).rjust(7)
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)

    def started(self, run_id, groups) -> None:
        self._line(f"run {run_id}: {len(groups)} groups")

    def group_started(self, group) -> None:
        total = "?" if group.total is None else group.total
        self._line(f"[{group.name}] started: {total} table{'' if total == 1 else 's'}")

    def event(self, group, event) -> None:
        kind = event.get("event")
        total = "?" if group.total is None else group.total
        n = f"({group.done + group.failed}/{total})"
        if kind == "table_copied":
            self._line(f"[{group.name}] copied {event.get('table')}: "
                       f"{fmt_count(event.get('rows'))} rows, {fmt_bytes(event.get('bytes'))} "
                       f"in {fmt_seconds(event.get('seconds'))} {n}")
        elif kind == "table_skipped":
            self._line(f"[{group.name}] skipped {event.get('table')}: already copied by this "
                       f"run {n}")
        elif kind == "table_failed":
            self._line(f"[{group.name}] FAILED {event.get('table')}: {event.get('error')} {n}")
        elif kind == "warning":
            self._line(f"[{group.name}] warning: {event.get('message') or event}")
        elif kind == "schema_changed":
            self._line(f"[{group.name}] schema changed: {drift_line(event)}")

    def group_finished(self, group) -> None:
        self._line(f"[{group.name}] {group.status} in {fmt_seconds(group.elapsed)}: "
                   f"{group.done}/{group.total if group.total is not None else '?'} tables, "
                   f"{fmt_count(group.rows)} rows, {fmt_rate(group.bytes, group.elapsed)}")

    def finished(self) -> None:
        pass


class _Silent:
    """No progress at all (run --dry-run prints its plan when the workers are done)."""

    def started(self, run_id, groups) -> None: ...
    def group_started(self, group) -> None: ...
    def event(self, group, event) -> None: ...
    def group_finished(self, group) -> None: ...
    def finished(self) -> None: ...


SILENT = _Silent()


def observer_for(console: Console):
    return LiveProgress(console) if console.is_terminal else PlainProgress(console)


def drift_line(change: dict) -> str:
    """One table's schema changes (a schema_changed event, or GroupState.schema_changes)."""
    text = f"{change.get('table')}: {'; '.join(str(c) for c in change.get('changes') or [])}"
    views = change.get("views") or []
    if views:
        text += f" (may break view{'s' if len(views) > 1 else ''} {', '.join(views)})"
    return text


def render_drift(console: Console, groups) -> None:
    """What changed in the source definitions tonight, one line per table (folded at the
    terminal's width, never cut: a dropped column is the line someone must read)."""
    changes = [(g.name, c) for g in groups for c in g.schema_changes]
    if not changes:
        return
    console.print(Text("Schema changes on the source since the last successful copy:",
                       style="bold"))
    for name, change in changes:
        console.print(Text(f"  [{name}] {drift_line(change)}", overflow="fold"))


def render_outcome(console: Console, outcome) -> None:
    """The summary table after a run (coloured on a terminal)."""
    crit = outcome.critical_group
    rows: list[Sequence[Cell] | None] = []
    for g in outcome.groups:
        copied = [r for r in g.results if r.get("status") == "copied"]
        slowest = max(copied, key=lambda r: r.get("seconds") or 0, default=None)
        slow = f"{slowest['table']} ({fmt_seconds(slowest.get('seconds'))})" if slowest else "-"
        name = Text(g.name, style="bold" if g is crit else "")
        total = "?" if g.total is None else str(g.total)
        rows.append((name, status_text(g.status), f"{g.done}/{total}", str(g.skipped),
                     Text(str(g.failed), style="red" if g.failed else ""), fmt_count(g.rows),
                     fmt_bytes(g.bytes), fmt_seconds(g.elapsed), fmt_rate(g.bytes, g.elapsed),
                     slow))
    rows.append(SECTION)
    total_rows = sum(g.rows for g in outcome.groups)
    total_bytes = sum(g.bytes for g in outcome.groups)
    rows.append((Text("total", style="bold"),
                 status_text("succeeded" if outcome.ok else "failed"),
                 str(sum(g.done for g in outcome.groups)),
                 str(sum(g.skipped for g in outcome.groups)),
                 str(sum(g.failed for g in outcome.groups)), fmt_count(total_rows),
                 fmt_bytes(total_bytes), fmt_seconds(outcome.seconds),
                 fmt_rate(total_bytes, outcome.seconds), ""))
    console.print(fitted_table(console, f"nightcopy run {outcome.run_id}", (
        Col("group", fold=True), Col("status"), Col("tables", "right"),
        Col("skipped", "right", drop=3), Col("failed", "right"), Col("rows", "right"),
        Col("size", "right", drop=4), Col("time", "right"), Col("rate", "right", drop=5),
        Col("slowest table", fold=True, drop=2)), rows))
    if crit is not None and len(outcome.groups) > 1:
        console.print(Text.assemble("Critical path: group ", (crit.name, "bold"),
                                    f" finished last ({fmt_seconds(crit.elapsed)})."))
    for g in outcome.groups:
        for r in g.results:
            if r.get("status") == "failed":
                console.print(Text(f"failed: [{g.name}] {r.get('table')}: {r.get('error')}",
                                   style="red"), soft_wrap=True)
        if g.status == "failed" and not g.failed:
            console.print(Text(f"failed: [{g.name}] {g.error}", style="red"), soft_wrap=True)
            tail = [line for line in g.stderr_tail if line.strip()][-5:]
            for line in tail[:-1]:
                console.print(f"    {line}", markup=False)
        if g.warnings:
            line = f"[{g.name}] {len(g.warnings)} warning(s), e.g. {g.warnings[0]}"
            if len(line) > console.width:  # one line per group: a summary, not the list
                line = line[:console.width - 1] + "…"
            console.print(Text(line, style="yellow"))
    render_drift(console, outcome.groups)
    if not outcome.ok:
        console.print(f"Rerun with --run-id {outcome.run_id} to copy only what did not finish.")
