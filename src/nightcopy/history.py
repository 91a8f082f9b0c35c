"""Per-table timings and past runs: from the ledger in the target, or from CloudWatch Logs.

The ledger (nightcopy.runs, nightcopy.table_results) is the default source: it is written in the
same transaction as each table's swap, so it is exact. `--from-logs` reads the workers' JSON
lines in CloudWatch Logs instead (with the queries template.yaml saves), for when the target is
not reachable from where the operator sits.

The critical path of a night is the group that finished last: it alone decides when the
reporting database is complete, so that is the group to split (see `nightcopy plan`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nightcopy.errors import NightcopyError
from nightcopy.ledger import LEDGER_SCHEMA


@dataclass
class TableTiming:
    table: str
    group: str
    status: str
    rows: int | None
    bytes: int | None
    seconds: float | None
    copy_seconds: float | None = None
    index_seconds: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 1
    error: str | None = None


@dataclass
class GroupTiming:
    group: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    tables: int | None
    failed: int | None
    rows: int | None
    bytes: int | None
    seconds: float | None


@dataclass
class RunTimings:
    run_id: str
    tables: list[TableTiming]  # slowest first
    groups: list[GroupTiming]  # in finishing order, the critical one last
    source: str  # "ledger" or "logs"

    @property
    def critical_group(self) -> GroupTiming | None:
        """The group that finished last (a group still running counts as last)."""
        if not self.groups:
            return None
        return max(self.groups, key=_finish_key)

    @property
    def started_at(self) -> datetime | None:
        starts = [g.started_at for g in self.groups if g.started_at]
        return min(starts) if starts else None

    @property
    def finished_at(self) -> datetime | None:
        if any(g.finished_at is None for g in self.groups):
            return None
        ends = [g.finished_at for g in self.groups if g.finished_at]
        return max(ends) if ends else None

    @property
    def wall_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def critical_tables(self) -> list[TableTiming]:
        """The critical group's tables in the order they finished."""
        crit = self.critical_group
        if crit is None:
            return []
        mine = [t for t in self.tables if t.group == crit.group]
        return sorted(mine, key=lambda t: t.finished_at or datetime.max.replace(tzinfo=UTC))


def _finish_key(g: GroupTiming):
    far = datetime.max.replace(tzinfo=UTC)
    return (g.finished_at or far, g.group)


@dataclass
class RunSummary:
    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    status: str  # succeeded | failed | running
    groups: int
    tables: int
    failed: int
    rows: int
    bytes: int
    critical_group: str | None
    critical_seconds: float | None  # critical group's finish minus the run's start

    @property
    def wall_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclass
class TableTrend:
    table: str
    group: str
    runs: int
    last: float
    avg: float
    min: float
    max: float


@dataclass
class History:
    runs: list[RunSummary]  # newest first
    tables: list[TableTrend]  # slowest (by average) first
    source: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------- ledger

def _ledger_exists(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{LEDGER_SCHEMA}.runs",))
        found = cur.fetchone()[0] is not None
    conn.rollback()
    return found


def _no_ledger(redacted: str) -> NightcopyError:
    return NightcopyError(
        f"no run ledger in the target ({redacted}): nothing has been copied there yet "
        f"(schema {LEDGER_SCHEMA} is created by the first `nightcopy copy`)"
    )


def latest_run_id(conn) -> str | None:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT run_id FROM {LEDGER_SCHEMA}.runs GROUP BY run_id"
            " ORDER BY max(started_at) DESC, run_id DESC LIMIT 1"
        )
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def run_timings_from_ledger(conn, run_id: str | None, redacted: str) -> RunTimings:
    if not _ledger_exists(conn):
        raise _no_ledger(redacted)
    run_id = run_id or latest_run_id(conn)
    if run_id is None:
        raise NightcopyError(f"the ledger in the target ({redacted}) records no runs yet")
    with conn.cursor() as cur:
        # Figures come from the table results, not from runs' own columns: a resumed run
        # rewrites those with its last invocation's (the one that copied what was left).
        cur.execute(
            f"""SELECT r.group_name, r.status, r.started_at, r.finished_at, r.tables,
                       coalesce(t.failed, r.failed, 0)::int, coalesce(t.rows, 0)::bigint,
                       coalesce(t.bytes, 0)::bigint,
                       extract(epoch FROM r.finished_at - r.started_at)::float8
                  FROM {LEDGER_SCHEMA}.runs r
                  LEFT JOIN (SELECT group_name,
                                    count(*) FILTER (WHERE status = 'failed') AS failed,
                                    sum(rows) FILTER (WHERE status = 'copied') AS rows,
                                    sum(bytes) FILTER (WHERE status = 'copied') AS bytes
                               FROM {LEDGER_SCHEMA}.table_results WHERE run_id = %s
                              GROUP BY group_name) t USING (group_name)
                 WHERE r.run_id = %s""",
            (run_id, run_id),
        )
        groups = [GroupTiming(*row) for row in cur.fetchall()]
        cur.execute(
            f"""SELECT table_name, group_name, status, rows, bytes, seconds, copy_seconds,
                       index_seconds, started_at, finished_at, attempts, error
                  FROM {LEDGER_SCHEMA}.table_results WHERE run_id = %s
                 ORDER BY seconds DESC NULLS LAST, table_name""",
            (run_id,),
        )
        tables = [TableTiming(*row) for row in cur.fetchall()]
    conn.rollback()
    if not groups and not tables:
        raise NightcopyError(f"run {run_id!r} is not in the ledger ({redacted}); "
                             "`nightcopy history` lists the recent runs")
    groups.sort(key=_finish_key)
    return RunTimings(run_id, tables, groups, "ledger")


def history_from_ledger(conn, nights: int, redacted: str) -> History:
    if not _ledger_exists(conn):
        raise _no_ledger(redacted)
    with conn.cursor() as cur:
        # One row per run (a run is all groups sharing a run id), newest first; the critical
        # group is the one with the latest finish (NULL = still running sorts last-finishing).
        cur.execute(
            f"""WITH recent AS (
                    SELECT run_id, min(started_at) AS started_at,
                           CASE WHEN bool_and(finished_at IS NOT NULL)
                                THEN max(finished_at) END AS finished_at,
                           CASE WHEN bool_or(status = 'running') THEN 'running'
                                WHEN bool_or(status = 'failed') THEN 'failed'
                                ELSE 'succeeded' END AS status,
                           count(*) AS groups, coalesce(sum(tables), 0) AS tables
                      FROM {LEDGER_SCHEMA}.runs GROUP BY run_id
                     ORDER BY min(started_at) DESC, run_id DESC LIMIT %s),
                results AS (
                    -- one row per table and run (a resumed table keeps its latest attempt)
                    SELECT run_id, count(*) FILTER (WHERE status = 'failed') AS failed,
                           sum(rows) FILTER (WHERE status = 'copied') AS rows,
                           sum(bytes) FILTER (WHERE status = 'copied') AS bytes
                      FROM {LEDGER_SCHEMA}.table_results
                     WHERE run_id IN (SELECT run_id FROM recent) GROUP BY run_id)
                SELECT r.run_id, r.started_at, r.finished_at, r.status, r.groups, r.tables,
                       coalesce(res.failed, 0), coalesce(res.rows, 0), coalesce(res.bytes, 0),
                       c.group_name, extract(epoch FROM c.finished_at - r.started_at)
                  FROM recent r
                  LEFT JOIN results res USING (run_id)
                  LEFT JOIN LATERAL (
                       SELECT group_name, finished_at FROM {LEDGER_SCHEMA}.runs g
                        WHERE g.run_id = r.run_id
                        ORDER BY g.finished_at DESC NULLS FIRST, g.group_name DESC LIMIT 1) c
                    ON true
                 ORDER BY r.started_at DESC, r.run_id DESC""",
            (nights,),
        )
        runs = [
            RunSummary(run_id, started, finished, status, int(groups), int(tables), int(failed),
                       int(rows), int(nbytes), crit, float(crit_s) if crit_s is not None else None)
            for (run_id, started, finished, status, groups, tables, failed, rows, nbytes, crit,
                 crit_s) in cur.fetchall()
        ]
        run_ids = [r.run_id for r in runs]
        cur.execute(
            f"""SELECT table_name,
                       (array_agg(group_name ORDER BY finished_at DESC))[1],
                       count(*),
                       (array_agg(seconds ORDER BY finished_at DESC))[1],
                       avg(seconds), min(seconds), max(seconds)
                  FROM {LEDGER_SCHEMA}.table_results
                 WHERE run_id = ANY(%s) AND status = 'copied' AND seconds IS NOT NULL
                 GROUP BY table_name
                 ORDER BY avg(seconds) DESC, table_name""",
            (run_ids,),
        )
        trends = [TableTrend(t, g or "", int(n), float(last), float(avg), float(lo), float(hi))
                  for t, g, n, last, avg, lo, hi in cur.fetchall()]
    conn.rollback()
    return History(runs, trends, "ledger")


def timings(target_dsn: str, run_id: str | None) -> RunTimings:
    from nightcopy.dsn import connect, redact_dsn

    conn = connect(target_dsn, "target", "nightcopy timings")
    try:
        return run_timings_from_ledger(conn, run_id, redact_dsn(target_dsn))
    finally:
        conn.close()


def history(target_dsn: str, nights: int) -> History:
    from nightcopy.dsn import connect, redact_dsn

    conn = connect(target_dsn, "target", "nightcopy history")
    try:
        return history_from_ledger(conn, nights, redact_dsn(target_dsn))
    finally:
        conn.close()


# ------------------------------------------------------------------------ CloudWatch Logs

# When each group of a run finished (its run_summary line), to find runs and the critical path.
# Kept here rather than in nightcopy.queries: template.yaml does not save it.
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


def run_insights_query(client, log_group: str, query: str, start: datetime, end: datetime,
                       *, poll_seconds: float = 1.0, timeout: float = 300.0) -> list[dict]:
    """StartQuery + GetQueryResults until complete; rows as {field: value} (no @ptr)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        query_id = client.start_query(
            logGroupName=log_group, queryString=query,
            startTime=int(start.timestamp()), endTime=int(end.timestamp()),
        )["queryId"]
        deadline = time.monotonic() + timeout
        while True:
            response = client.get_query_results(queryId=query_id)
            status = response.get("status")
            if status == "Complete":
                break
            if status in ("Failed", "Cancelled", "Timeout", "Unknown"):
                raise NightcopyError(f"the Logs Insights query on {log_group} ended {status}")
            if time.monotonic() > deadline:
                raise NightcopyError(f"the Logs Insights query on {log_group} took over "
                                     f"{timeout:.0f}s; try a shorter --days range")
            time.sleep(poll_seconds)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise NightcopyError(f"log group {log_group} does not exist in this account/region "
                                 "(see the stack's outputs for its name)") from None
        raise NightcopyError(f"CloudWatch Logs refused the query on {log_group}: {exc}") from None
    except BotoCoreError as exc:
        raise NightcopyError(f"cannot query CloudWatch Logs: {exc}") from None
    return [
        {f["field"]: f.get("value") for f in row if f.get("field") != "@ptr"}
        for row in response.get("results", [])
    ]


def _num(value, kind=float):
    if value in (None, ""):
        return None
    try:
        return kind(float(value))
    except ValueError:
        return None


def _when(value) -> datetime | None:
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


def _group_rows(rows: list[dict]) -> dict[str, list[GroupTiming]]:
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
            bytes=_num(r.get("bytes"), int), seconds=seconds,
        ))
    return by_run


def _logs_client(client):
    if client is not None:
        return client
    import boto3

    return boto3.client("logs")


def timings_from_logs(log_group: str, run_id: str | None, *, days: float = 2.0,
                      client=None, now: datetime | None = None) -> RunTimings:
    from nightcopy.queries import TABLE_TIMINGS_QUERY

    logs = _logs_client(client)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    finish_query = for_run(GROUP_FINISH_QUERY, run_id) if run_id else GROUP_FINISH_QUERY
    by_run = _group_rows(run_insights_query(logs, log_group, finish_query, start, end))
    if run_id is None:
        if not by_run:
            raise NightcopyError(f"no run_summary lines in {log_group} over the last {days:g} "
                                 "days; widen the range with --days")
        run_id = max(by_run, key=lambda r: max(_finish_key(g)[0] for g in by_run[r]))
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
    groups = sorted(by_run.get(run_id, []), key=_finish_key)
    if not tables and not groups:
        raise NightcopyError(f"run {run_id!r} left no table_copied lines in {log_group} over "
                             f"the last {days:g} days; widen the range with --days")
    return RunTimings(run_id, tables, groups, "logs")


def history_from_logs(log_group: str, nights: int, *, days: float | None = None,
                      client=None, now: datetime | None = None) -> History:
    from nightcopy.queries import SLOWEST_TABLES_QUERY

    logs = _logs_client(client)
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
