"""How the operator commands look in a terminal (rich tables); no logic, no database.

rich drops colours and styles by itself when stdout is not a terminal (and honours NO_COLOR), so
the same code gives coloured tables interactively and plain text in cron mails and CI logs.

Rich markup is off on every console made here: what is printed holds user text (table names such
as `"a[b]"`, error messages, `[[groups]]` in TOML), which markup would silently swallow. Emphasis
is given with Text styles instead (`Text.assemble`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"succeeded": "green", "copied": "green", "ok": "green", "failed": "bold red",
                "running": "yellow", "interrupted": "yellow", "skipped": "cyan", "pending": "dim"}



def add_columns(table: Table, columns: Iterable[tuple[str, JustifyMethod]]) -> None:
    """Add (header, justification) columns to a rich table, in order."""
    for header, justify in columns:
        table.add_column(header, justify=justify)


@dataclass(frozen=True)
class Col:
    """A column of a table that must stay readable from 80 columns up.

    drop: 0 for a column that is always shown; otherwise columns are left out, highest `drop`
    first, until the table fits the console (a note names them). fold: a name column whose long
    values wrap onto a second line instead of being cut to `cust…` (numbers and statuses are never
    cut: they keep their width, and the folding happens in the name columns).
    """
    header: str
    justify: JustifyMethod = "left"
    drop: int = 0
    fold: bool = False


SECTION = None  # a row that is this value starts a new section (a rule in the table)

Cell = str | Text


FOLD_WIDTH = 16  # a name column may be folded down to this width (then it wraps)


def fitted_table(con: Console, title: str, columns: Sequence[Col],
                 rows: Sequence[Sequence[Cell] | None]) -> Table:
    """A rich table of these rows, leaving out the least useful columns until it fits con."""
    data = [row for row in rows if row is not SECTION]

    def needed(i: int) -> int:
        """The width column i needs: its widest cell (a name column: at most FOLD_WIDTH)."""
        widest = max([Text(columns[i].header).cell_len]
                     + [(cell if isinstance(cell, Text) else Text(cell)).cell_len
                        for cell in (row[i] for row in data)])
        return min(widest, FOLD_WIDTH) if columns[i].fold else widest

    shown = list(range(len(columns)))
    # Each column takes its width plus 3 (a space either side and a rule), plus the last rule.
    while sum(needed(i) + 3 for i in shown) + 1 > con.width:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    table = Table(title=title, title_justify="left")
    for i in shown:
        c = columns[i]
        table.add_column(c.header, justify=c.justify, overflow="fold", no_wrap=not c.fold,
                         min_width=needed(i))
    for row in rows:
        if row is SECTION:
            table.add_section()
        else:
            table.add_row(*(row[i] for i in shown))
    left_out = [c.header for i, c in enumerate(columns) if i not in shown]
    if left_out:
        table.caption = (f"(left out at {con.width} columns: {', '.join(left_out)}; a wider "
                         "terminal or --json shows them)")
        table.caption_justify = "left"
    return table


def console(stderr: bool = False) -> Console:
    """The console every command prints on: markup off (see above).

    Width: COLUMNS when set (a terminal's width, or what `script`/CI set), else the terminal's;
    output to a file or a pipe without COLUMNS gets 120 columns, so table names are not folded
    in cron mails. Every table is laid out to stay readable from 80 columns up.
    """
    con = Console(stderr=stderr, highlight=False, markup=False)
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = Console(stderr=stderr, highlight=False, markup=False, width=120)
    return con


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def fmt_rate(nbytes: float | None, seconds: float | None) -> str:
    if not nbytes or not seconds or seconds <= 0:
        return "-"
    return f"{nbytes / seconds / 1e6:.1f} MB/s"


def fmt_count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_time(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def status_text(status: str | None) -> Text:
    status = status or "-"
    return Text(status, style=STATUS_STYLE.get(status, ""))


# ------------------------------------------------------------------------------ timings

def render_timings(con: Console, t, *, limit: int | None = None) -> None:
    """One run: its groups (critical path last) and its tables, slowest first."""
    con.print(Text.assemble((f"Run {t.run_id}", "bold"), f" (from the {t.source})"))
    wall = t.wall_seconds
    started = fmt_time(t.started_at)
    if wall is not None:
        state = f"wall-clock {fmt_seconds(wall)}"
    elif any(g.status == "running" for g in t.groups):
        state = "still running"
    else:  # a worker killed without a word: no finish recorded (ops/history.py)
        state = "interrupted, no finish recorded"
    con.print(f"started {started}, {state}")
    crit = t.critical_group
    group_rows: list[Sequence[Cell] | None] = []
    for g in t.groups:
        name = Text(g.group or "(none)", style="bold" if g is crit else "")
        if g is crit:
            name.append(" <- critical path", style="bold magenta")
        group_rows.append((name, status_text(g.status), fmt_count(g.tables), fmt_count(g.failed),
                           fmt_count(g.rows), fmt_bytes(g.bytes), fmt_seconds(g.work_seconds),
                           fmt_seconds(g.seconds), fmt_time(g.finished_at)))
    if t.groups:
        con.print(fitted_table(con, "Groups (in the order they finished)", (
            Col("group", fold=True), Col("status"), Col("tables", "right"),
            Col("failed", "right"), Col("rows", "right", drop=2), Col("size", "right", drop=3),
            Col("work", "right"), Col("wall", "right", drop=4), Col("finished", drop=1)),
            group_rows))
        resumed = [g for g in t.groups if g.work_seconds is not None and g.seconds is not None
                   and g.seconds > g.work_seconds + 60]
        if resumed:
            con.print(f"work: the workers' own time, summed over their attempts; wall: first "
                      f"start to last finish ({', '.join(g.group or '(none)' for g in resumed)} "
                      "resumed: the gap between attempts is in wall only).")
    shown = t.tables if limit is None else t.tables[:limit]
    if not shown:  # e.g. a run interrupted before its first table: say so, not an empty table
        con.print("No table finished in this run.")
    else:
        con.print(fitted_table(con, "Tables, slowest first", (
            Col("table", fold=True), Col("group", fold=True), Col("status"),
            Col("rows", "right", drop=2), Col("size", "right", drop=3), Col("seconds", "right"),
            Col("copy", "right", drop=4), Col("indexes", "right", drop=5),
            Col("lock wait", "right", drop=1), Col("rate", "right", drop=6)), [
            (r.table, r.group, status_text(r.status), fmt_count(r.rows), fmt_bytes(r.bytes),
             fmt_seconds(r.seconds), fmt_seconds(r.copy_seconds), fmt_seconds(r.index_seconds),
             fmt_seconds(r.lock_wait_seconds), fmt_rate(r.bytes, r.copy_seconds or r.seconds))
            for r in shown]))
    waited = [r for r in shown if (r.lock_wait_seconds or 0) >= 1]
    if waited:
        worst = max(waited, key=lambda r: r.lock_wait_seconds or 0)
        con.print(f"Lock waits: {len(waited)} table{'s' if len(waited) > 1 else ''} waited for "
                  f"the target's locks (longest {worst.table} "
                  f"{fmt_seconds(worst.lock_wait_seconds)}); plan counts work time without them.")
    if limit is not None and len(t.tables) > limit:
        con.print(f"...and {len(t.tables) - limit} faster tables (--limit 0 shows all)")
    if crit is not None:
        path = t.critical_tables()
        parts = ", ".join(f"{r.table} {fmt_seconds(r.seconds)}" for r in path[:8])
        more = f", ...{len(path) - 8} more" if len(path) > 8 else ""
        after = ""
        if crit.finished_at and t.started_at:
            after = f" at +{fmt_seconds((crit.finished_at - t.started_at).total_seconds())}"
        con.print(Text.assemble("Critical path: group ", (crit.group or "(none)", "bold"),
                                f" finished last{after}" + (f": {parts}{more}" if parts else "")))
    failed = [r for r in t.tables if r.status == "failed"]
    for r in failed:
        con.print(Text(f"failed: {r.table}: {r.error or 'unknown error'}", style="red"))


# ------------------------------------------------------------------------------ history

def render_history(con: Console, h) -> None:
    run_rows: list[Sequence[Cell] | None] = []
    for r in h.runs:
        crit = "-"
        if r.critical_group is not None:
            crit = f"{r.critical_group or '(none)'} ({fmt_seconds(r.critical_seconds)})"
        run_rows.append((r.run_id, fmt_time(r.started_at), status_text(r.status),
                         fmt_seconds(r.wall_seconds), fmt_count(r.groups), fmt_count(r.tables),
                         fmt_count(r.failed), fmt_count(r.rows), fmt_bytes(r.bytes), crit))
    con.print(fitted_table(con, f"Last {len(h.runs)} runs (from the {h.source})", (
        Col("run id", fold=True), Col("started", drop=1), Col("status"),
        Col("wall-clock", "right"), Col("groups", "right", drop=3), Col("tables", "right"),
        Col("failed", "right"), Col("rows", "right", drop=4), Col("size", "right", drop=5),
        Col("critical path", fold=True, drop=2)), run_rows))
    con.print(fitted_table(con, "Tables, slowest first (seconds per copy over these runs)", (
        Col("table", fold=True), Col("group", fold=True), Col("runs", "right"),
        Col("last", "right"), Col("avg", "right"), Col("min", "right", drop=1),
        Col("max", "right", drop=2)), [
        (t.table, t.group, str(t.runs), fmt_seconds(t.last), fmt_seconds(t.avg),
         fmt_seconds(t.min), fmt_seconds(t.max)) for t in h.tables]))
    if h.schema_changes:
        con.print(Text("Schema changes on the source (as each run copied them):", style="bold"))
        for c in h.schema_changes:
            con.print(Text(f"  {c.run_id} {c.table}: {'; '.join(c.changes)}", overflow="fold"))
    for note in h.notes:
        con.print(f"note: {note}")


# --------------------------------------------------------------------------------- plan

def render_plan(con: Console, plan, *, origin: str = "") -> None:
    side = Table(title=f"Groups today vs proposed ({plan.k})", title_justify="left")
    side.add_column("today", justify="left")
    side.add_column("tables", justify="right")
    side.add_column("est. time", justify="right")
    side.add_column("", justify="center")
    side.add_column("proposed", justify="left")
    side.add_column("tables", justify="right")
    side.add_column("est. time", justify="right")
    n = max(len(plan.current), len(plan.proposed))
    for i in range(n):
        cur = plan.current[i] if i < len(plan.current) else None
        new = plan.proposed[i] if i < len(plan.proposed) else None
        side.add_row(
            cur.name if cur else "", str(len(cur.tables)) if cur else "",
            fmt_seconds(cur.seconds) if cur else "", "|",
            new.name if new else "", str(len(new.tables)) if new else "",
            fmt_seconds(new.seconds) if new else "",
        )
    side.add_section()
    side.add_row(Text("makespan", style="bold"), "", Text(fmt_seconds(plan.current_makespan),
                 style="bold"), "|", Text("makespan", style="bold"), "",
                 Text(fmt_seconds(plan.proposed_makespan), style="bold green"))
    con.print(side)
    gain = plan.current_makespan - plan.proposed_makespan
    if plan.current_makespan > 0:
        pct = 100 * gain / plan.current_makespan
        verdict = (f"the night would end {fmt_seconds(gain)} sooner ({pct:.0f}%)" if gain > 0.005
                   else "no gain while linked tables stay together (today's groups split "
                        f"{len(plan.today_split_links)} of their links; see the warnings)"
                   if plan.today_split_links and not plan.split_links
                   else "no gain: today's groups are already as balanced as this plan")
    else:
        verdict = "nothing measured yet"
    con.print(f"Estimated makespan: today {fmt_seconds(plan.current_makespan)}, proposed "
              f"{fmt_seconds(plan.proposed_makespan)} (no split can beat "
              f"{fmt_seconds(plan.lower_bound)}): {verdict}.")
    con.print(f"Model: longest processing time first over {plan.k} groups; each worker copies "
              f"{plan.jobs} table{'s' if plan.jobs > 1 else ''} at once, biggest first (--jobs).")
    timed = sum(1 for c in plan.costs.values() if c.measured_runs)
    con.print(f"Costs: {timed} tables from (up to) their last {plan.nights} measured copies, "
              f"{len(plan.costs) - timed} from their size.")
    detail = Table(title="Proposed groups", title_justify="left")
    detail.add_column("group")
    detail.add_column("table")
    detail.add_column("est. time", justify="right")
    detail.add_column("basis")
    detail.add_column("today in")
    for g in plan.proposed:
        for i, table in enumerate(g.tables):
            c = plan.costs[table]
            basis = (f"avg of {c.measured_runs} run{'s' if c.measured_runs > 1 else ''}"
                     if c.measured_runs else f"size {fmt_bytes(c.size_bytes)}")
            detail.add_row(g.name if i == 0 else "", table, fmt_seconds(c.seconds), basis,
                           c.current_group or "")
        detail.add_section()
    con.print(detail)
    for w in plan.warnings:
        con.print(Text(f"warning: {w}", style="yellow"))


def render_toml_groups(con: Console, plan) -> None:
    import json

    con.print("For nightcopy.toml, replace the [[groups]] sections with:")
    for g in plan.proposed:
        con.print(f'\n[[groups]]\nname = "{g.name}"\ntables = [', markup=False)
        for t in g.tables:
            con.print(f"    {json.dumps(t)},", markup=False)
        con.print("]", markup=False)
