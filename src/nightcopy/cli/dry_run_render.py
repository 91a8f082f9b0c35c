"""`nightcopy run --dry-run` in a terminal: per group, the tables a night would copy."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from nightcopy.cli.render import SECTION, Cell, Col, fitted_table, fmt_bytes, fmt_count

_ACTION_STYLE = {"copy": "green", "skip": "cyan", "fail": "bold red"}


def render_dry_run(con: Console, outcome) -> None:
    """One table for the night (a section per group), then why each refused table would fail."""
    rows: list[Sequence[Cell] | None] = []
    for g in outcome.groups:
        if rows:
            rows.append(SECTION)
        for i, p in enumerate(g.planned):
            rows.append((g.name if i == 0 else "", p["table"],
                         Text(p["action"], style=_ACTION_STYLE.get(p["action"], "")),
                         fmt_bytes(p.get("size_bytes")), fmt_count(p.get("rows_estimate"))
                         if p.get("rows_estimate") is not None else "?",
                         ", ".join(p.get("swapped_with") or []) or "-"))
        if not g.planned:
            rows.append((g.name, "-", Text(g.error or g.status, style="bold red"), "", "", ""))
    con.print(fitted_table(con, f"nightcopy run --dry-run {outcome.run_id}: nothing written", (
        Col("group", fold=True), Col("table", fold=True), Col("action"),
        Col("size", "right"), Col("rows (est.)", "right", drop=2),
        Col("swapped with", fold=True, drop=1)), rows))
    planned = [p for g in outcome.groups for p in g.planned]
    size = sum(int(p.get("size_bytes") or 0) for p in planned if p["action"] == "copy")
    counts = {a: sum(1 for p in planned if p["action"] == a) for a in ("copy", "skip", "fail")}
    con.print(f"{counts['copy']} table(s) to copy ({fmt_bytes(size)} on the source), "
              f"{counts['skip']} already copied by this run id, {counts['fail']} would fail; "
              "each group reads one exported source snapshot.")
    for g in outcome.groups:
        for p in g.planned:
            if p["action"] == "fail":
                con.print(Text(f"would fail: [{g.name}] {p['table']}: {p.get('reason')}",
                               style="red"), soft_wrap=True)
