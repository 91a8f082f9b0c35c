"""`history --from-logs` / `timings --from-logs`: the workers' JSON lines in CloudWatch Logs.

For when the reporting database is not reachable from where the operator sits. Uses the query
text template.yaml saves (nightcopy.aws.logs_queries), narrowed to one run where needed, runs it
through nightcopy.aws.logs_insights, and turns the rows into the same result types as the ledger
path (nightcopy.ops.history), so the output looks the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nightcopy.aws.logs_insights import logs_client, run_insights_query
from nightcopy.errors import NightcopyError
from nightcopy.ops.history import (
    GroupTiming,
    History,
    RunSummary,
    RunTimings,
    TableTiming,
    TableTrend,
    finish_key,
)

# When each group of a run finished (its run_summary line), to find runs and the critical path.
# Kept here rather than in nightcopy.aws.logs_queries: template.yaml does not save it.
GROUP_FINISH_QUERY = """\
filter event = "run_summary"
| stats max(@timestamp) as finished, latest(status) as status, latest(seconds) as seconds, \
latest(tables) as tables, latest(failed) as failed, latest(rows) as rows, \
latest(bytes) as bytes by run_id, group
| sort finished desc
| limit 1000"""


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def for_run(query: str, run_id: str) -> str:
    """Narrow a saved query to one run: a filter right after its first command."""
    first, _, rest = query.partition("\n")
    line = f"| filter run_id = {_quote(run_id)}"
    return f"{first}\n{line}\n{rest}" if rest else f"{first}\n{line}"


def _num(value: str | float | None, kind: Callable[[float], Any] = float) -> Any:
    if value in (None, ""):
        return None
    try:
        return kind(float(value))
    except ValueError:
        return None


def _when(value: str | float | None) -> datetime | None:
    """Logs Insights prints timestamps as 'YYYY-MM-DD HH:MM:SS.mmm' (UTC)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():  # epoch milliseconds
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        return datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC)
    except ValueError:
        return None


def _group_rows(rows: list[dict[str, Any]]) -> dict[str, list[GroupTiming]]:
    by_run: dict[str, list[GroupTiming]] = {}
    for r in rows:
        if not r.get("run_id"):
            continue
        seconds = _num(r.get("seconds"))
        finished = _when(r.get("finished"))
        started = finished - timedelta(seconds=seconds) if finished and seconds else None
        by_run.setdefault(r["run_id"], []).append(GroupTiming(
            group=r.get("group") or "", status=r.get("status") or "", started_at=started,
            finished_at=finished, tables=_num(r.get("tables"), int),
            failed=_num(r.get("failed"), int), rows=_num(r.get("rows"), int),
            bytes=_num(r.get("bytes"), int), seconds=seconds, work_seconds=seconds,
        ))
    return by_run


def timings_from_logs(log_group: str, run_id: str | None, *, days: float = 2.0,
                      client: Any = None, now: datetime | None = None) -> RunTimings:
    from nightcopy.aws.logs_queries import TABLE_TIMINGS_QUERY

    logs = logs_client(client)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    finish_query = for_run(GROUP_FINISH_QUERY, run_id) if run_id else GROUP_FINISH_QUERY
    by_run = _group_rows(run_insights_query(logs, log_group, finish_query, start, end))
    if run_id is None:
        if not by_run:
            raise NightcopyError(f"no run_summary lines in {log_group} over the last {days:g} "
                                 "days; widen the range with --days")
        run_id = max(by_run, key=lambda r: max(finish_key(g)[0] for g in by_run[r]))
    rows = run_insights_query(logs, log_group, for_run(TABLE_TIMINGS_QUERY, run_id), start, end)
    tables = [
        TableTiming(
            table=r.get("table") or "", group=r.get("group") or "", status="copied",
            rows=_num(r.get("rows"), int), bytes=_num(r.get("bytes"), int),
            seconds=_num(r.get("seconds")), copy_seconds=_num(r.get("copy_seconds")),
            index_seconds=_num(r.get("index_seconds")),
        )
        for r in rows if r.get("table") and r.get("run_id", run_id) == run_id
    ]
    tables.sort(key=lambda t: (-(t.seconds or 0.0), t.table))
    groups = sorted(by_run.get(run_id, []), key=finish_key)
    if not tables and not groups:
        raise NightcopyError(f"run {run_id!r} left no table_copied lines in {log_group} over "
                             f"the last {days:g} days; widen the range with --days")
    return RunTimings(run_id, tables, groups, "logs")


def history_from_logs(log_group: str, nights: int, *, days: float | None = None,
                      client: Any = None, now: datetime | None = None) -> History:
    from nightcopy.aws.logs_queries import SLOWEST_TABLES_QUERY

    logs = logs_client(client)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days if days is not None else nights + 1)
    by_run = _group_rows(run_insights_query(logs, log_group, GROUP_FINISH_QUERY, start, end))
    runs: list[RunSummary] = []
    for run_id, groups in by_run.items():
        timing = RunTimings(run_id, [], groups, "logs")
        crit = timing.critical_group
        started = timing.started_at
        runs.append(RunSummary(
            run_id=run_id, started_at=started, finished_at=timing.finished_at,
            status="failed" if any(g.status == "failed" for g in groups) else "succeeded",
            groups=len(groups), tables=sum(g.tables or 0 for g in groups),
            failed=sum(g.failed or 0 for g in groups), rows=sum(g.rows or 0 for g in groups),
            bytes=sum(g.bytes or 0 for g in groups),
            critical_group=crit.group if crit else None,
            critical_seconds=(crit.finished_at - started).total_seconds()
            if crit and crit.finished_at and started else None,
        ))
    far_past = datetime.min.replace(tzinfo=UTC)
    runs.sort(key=lambda r: (r.started_at or far_past, r.run_id), reverse=True)
    runs = runs[:nights]
    trends = []
    for r in run_insights_query(logs, log_group, SLOWEST_TABLES_QUERY, start, end):
        if not r.get("table"):
            continue
        avg = _num(r.get("avg_seconds")) or 0.0
        trends.append(TableTrend(
            table=r.get("table") or "", group=r.get("group") or "",
            runs=_num(r.get("nights"), int) or 0, last=avg, avg=avg, min=avg,
            max=_num(r.get("max_seconds")) or avg,
        ))
    notes = [f"CloudWatch Logs {log_group}, last {(end - start).days} days; "
             "per-table figures span that whole range (last and min not available there)"]
    return History(runs, trends, "logs", notes)
