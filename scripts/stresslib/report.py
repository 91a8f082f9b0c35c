"""The summary table of scripts/swap-stress, and the details behind its non-zero counts."""

from __future__ import annotations

from collections import Counter

from stresslib.harness import StressResult

COLUMNS = [
    ("config", "config"), ("nights", "nights"), ("failed_tables", "failed tables"),
    ("statements", "reader stmts"), ("reader_errors", "reader errors"),
    ("mixed_results", "mixed results"), ("neither_night_results", "neither night"),
    ("wait_median_s", "wait median s"), ("wait_p99_s", "wait p99 s"),
    ("wait_max_s", "wait max s"), ("waits_over_bound", "waits > 3x lock timeout"),
    ("server_deadlocks", "server deadlocks"), ("objects_lost", "objects lost"),
]


def table(results: list[StressResult]) -> str:
    rows = [[str(r.summary()[key]) for key, _title in COLUMNS] for r in results]
    titles = [title for _key, title in COLUMNS]
    widths = [max(len(t), *(len(row[i]) for row in rows)) for i, t in enumerate(titles)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(titles), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def details(result: StressResult, limit: int = 5) -> str:
    """What lies behind the counts: the first failures of each kind, and how often."""
    lines = [f"{result.config.label}:"]
    if not result.scope_passed and result.config.swap_scope:
        lines.append(f"  --swap-scope {result.config.swap_scope} was NOT passed: this nightcopy "
                     "copy has no such option yet (issue 14), so this is today's per-table swap")
    failures = Counter(error for _n, _t, error in result.failed_tables)
    for error, count in failures.most_common(limit):
        lines.append(f"  failed table x{count}: {error}")
    for error, count in Counter(o.error or '' for o in result.errors).most_common(limit):
        lines.append(f"  reader error x{count}: {error}")
    for o in result.mixed[:limit]:
        lines.append(f"  mixed: {o.relation} saw nights {list(o.result[2])}")  # type: ignore[index]
    if result.neither_night:
        kinds = Counter(o.relation for o in result.neither_night)
        lines.append("  results equal to neither the old nor the new night, by relation: "
                     + ", ".join(f"{rel} x{count}" for rel, count in kinds.most_common()))
        if result.failed_tables:
            lines.append("  (a failed table keeps an older night's rows, so every later query "
                         "over it counts here too, as does a materialized view left stale)")
    slow = [o for o in result.observations if o.wait > result.bound]
    for o in sorted(slow, key=lambda o: -o.wait)[:limit]:
        lines.append(f"  slow: {o.relation} waited {o.wait:.2f}s "
                     f"(bound {result.bound:g}s){' then ' + o.error if o.error else ''}")
    for lost in result.lost:
        lines.append(f"  lost: {lost}")
    if len(lines) == 1:
        lines.append("  nothing to report: every count is zero")
    return "\n".join(lines)
