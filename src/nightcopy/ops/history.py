"""Per-table timings and past runs: from the ledger in the target, or from CloudWatch Logs.

A run is a night (all groups sharing a run id); each group's worker in it is an invocation. The
ledger (nightcopy.invocations, nightcopy.table_results) is the default source: it is written in
the same transaction as each table's swap, so it is exact. An older ledger version is read as it
is; a newer one is refused (nightcopy.engine.ledger.readable_ledger). `--from-logs` reads the workers' JSON
lines in CloudWatch Logs instead (nightcopy.ops.history_from_logs), into the same result types.

The critical path of a night is the group that finished last: it alone decides when the
reporting database is complete, so that is the group to split (see `nightcopy plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from nightcopy.engine.ledger import (
    LEDGER_SCHEMA,
    TABLE_DEFINITIONS,
    TABLE_RESULTS,
    readable_ledger,
)
from nightcopy.engine.schema_drift import changes as drift_changes
from nightcopy.errors import NightcopyError


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
    lock_wait_seconds: float | None = None  # of `seconds`, waiting for the target's locks


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
    seconds: float | None  # wall-clock: first start to last finish (a resume's gap included)
    # Work: the worker's own time, summed over its attempts (the ledger's invocations.seconds);
    # a resumed group's wall-clock includes the hours between the attempts, its work does not.
    work_seconds: float | None = None


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
        return max(self.groups, key=finish_key)

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


def finish_key(g: GroupTiming):
    far = datetime.max.replace(tzinfo=UTC)
    return (g.finished_at or far, g.group)


@dataclass
class RunSummary:
    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    status: str  # succeeded | failed | running | interrupted
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
class SchemaChange:
    """A table's source definition as one run copied it, against the one recorded before it
    (engine/schema_drift.py's phrases)."""
    run_id: str
    table: str
    changes: list[str]


@dataclass
class History:
    runs: list[RunSummary]  # newest first
    tables: list[TableTrend]  # slowest (by average) first
    source: str
    notes: list[str] = field(default_factory=list)
    # What changed in the source definitions, per run shown (newest first): from the ledger's
    # table_definitions (version 4 on; older ledgers and --from-logs have none).
    schema_changes: list[SchemaChange] = field(default_factory=list)


# --------------------------------------------------------------------------------- ledger

def _invocations_table(conn, redacted: str) -> str:
    """The ledger's invocations table; a clear error when there is no ledger or it is newer
    than this release knows."""
    table = readable_ledger(conn)
    if table is None:
        raise _no_ledger(redacted)
    return table


def _no_ledger(redacted: str) -> NightcopyError:
    return NightcopyError(
        f"no run ledger in the target ({redacted}): nothing has been copied there yet "
        f"(schema {LEDGER_SCHEMA} is created by the first `nightcopy copy`)"
    )


# A worker's target sessions carry application_name `nightcopy:RUN_ID` (engine/invocation.py;
# cut to PostgreSQL's 63 bytes), which pg_stat_activity shows to every role. An invocation the
# ledger still records as running with no such session left was killed without a chance to say
# so (kill -9, a lost machine): it is shown as interrupted, and the ledger is left as it is.
_LIVE_RUNS_SQL = """
SELECT DISTINCT application_name FROM pg_catalog.pg_stat_activity
 WHERE datname = pg_catalog.current_database() AND application_name LIKE 'nightcopy:%'"""


def _worker_application_name(run_id: str) -> str:
    return f"nightcopy:{run_id}"[:63]  # as the worker sets it (run ids are ASCII)


def _seen_status(status: str, run_id: str, live: set[str]) -> str:
    if status == "running" and _worker_application_name(run_id) not in live:
        return "interrupted"
    return status


def _live_runs(cur) -> set[str]:
    cur.execute(_LIVE_RUNS_SQL)
    return {str(row[0]) for row in cur.fetchall()}


def latest_run_id(conn, invocations: str) -> str | None:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT run_id FROM {invocations} GROUP BY run_id"
            " ORDER BY max(started_at) DESC, run_id DESC LIMIT 1"
        )
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def run_timings_from_ledger(conn, run_id: str | None, redacted: str) -> RunTimings:
    invocations = _invocations_table(conn, redacted)
    run_id = run_id or latest_run_id(conn, invocations)
    if run_id is None:
        raise NightcopyError(f"the ledger in the target ({redacted}) records no runs yet")
    with conn.cursor() as cur:
        # Figures come from the table results, not from the invocations' own columns: a resumed
        # invocation rewrites those with its last worker's (the one that copied what was left).
        cur.execute(
            f"""SELECT r.group_name, r.status, r.started_at, r.finished_at, r.tables,
                       coalesce(t.failed, r.failed, 0)::int, coalesce(t.rows, 0)::bigint,
                       coalesce(t.bytes, 0)::bigint,
                       extract(epoch FROM r.finished_at - r.started_at)::float8,
                       r.seconds
                  FROM {invocations} r
                  LEFT JOIN (SELECT group_name,
                                    count(*) FILTER (WHERE status = 'failed') AS failed,
                                    sum(rows) FILTER (WHERE status = 'copied') AS rows,
                                    sum(bytes) FILTER (WHERE status = 'copied') AS bytes
                               FROM {TABLE_RESULTS} WHERE run_id = %s
                              GROUP BY group_name) t USING (group_name)
                 WHERE r.run_id = %s""",
            (run_id, run_id),
        )
        groups = [GroupTiming(*row) for row in cur.fetchall()]
        live = _live_runs(cur)
        for g in groups:
            g.status = _seen_status(g.status, run_id, live)
        cur.execute(
            f"""SELECT table_name, group_name, status, rows, bytes, seconds, copy_seconds,
                       index_seconds, started_at, finished_at, attempts, error,
                       lock_wait_seconds
                  FROM {TABLE_RESULTS} WHERE run_id = %s
                 ORDER BY seconds DESC NULLS LAST, table_name""",
            (run_id,),
        )
        tables = [TableTiming(*row) for row in cur.fetchall()]
    conn.rollback()
    if not groups and not tables:
        raise NightcopyError(f"run {run_id!r} is not in the ledger ({redacted}); "
                             "`nightcopy history` lists the recent runs")
    groups.sort(key=finish_key)
    return RunTimings(run_id, tables, groups, "ledger")


def history_from_ledger(conn, nights: int, redacted: str) -> History:
    invocations = _invocations_table(conn, redacted)
    with conn.cursor() as cur:
        # One row per run (a run is all groups sharing a run id), newest first; the critical
        # group is the one with the latest finish (NULL = still running sorts last-finishing).
        cur.execute(
            f"""WITH recent AS (
                    SELECT run_id, min(started_at) AS started_at,
                           CASE WHEN bool_and(finished_at IS NOT NULL)
                                THEN max(finished_at) END AS finished_at,
                           CASE WHEN bool_or(status = 'running') THEN 'running'
                                WHEN bool_or(status = 'interrupted') THEN 'interrupted'
                                WHEN bool_or(status = 'failed') THEN 'failed'
                                ELSE 'succeeded' END AS status,
                           count(*) AS groups, coalesce(sum(tables), 0) AS tables
                      FROM {invocations} GROUP BY run_id
                     ORDER BY min(started_at) DESC, run_id DESC LIMIT %s),
                results AS (
                    -- one row per table and run (a resumed table keeps its latest attempt)
                    SELECT run_id, count(*) FILTER (WHERE status = 'failed') AS failed,
                           sum(rows) FILTER (WHERE status = 'copied') AS rows,
                           sum(bytes) FILTER (WHERE status = 'copied') AS bytes
                      FROM {TABLE_RESULTS}
                     WHERE run_id IN (SELECT run_id FROM recent) GROUP BY run_id)
                SELECT r.run_id, r.started_at, r.finished_at, r.status, r.groups, r.tables,
                       coalesce(res.failed, 0), coalesce(res.rows, 0), coalesce(res.bytes, 0),
                       c.group_name, extract(epoch FROM c.finished_at - r.started_at)
                  FROM recent r
                  LEFT JOIN results res USING (run_id)
                  LEFT JOIN LATERAL (
                       SELECT group_name, finished_at FROM {invocations} g
                        WHERE g.run_id = r.run_id
                        ORDER BY g.finished_at DESC NULLS FIRST, g.group_name DESC LIMIT 1) c
                    ON true
                 ORDER BY r.started_at DESC, r.run_id DESC""",
            (nights,),
        )
        found = cur.fetchall()
        live = _live_runs(cur)
        runs = [
            RunSummary(run_id, started, finished, _seen_status(status, run_id, live),
                       int(groups), int(tables), int(failed),
                       int(rows), int(nbytes), crit, float(crit_s) if crit_s is not None else None)
            for (run_id, started, finished, status, groups, tables, failed, rows, nbytes, crit,
                 crit_s) in found
        ]
        run_ids = [r.run_id for r in runs]
        cur.execute(
            f"""SELECT table_name,
                       (array_agg(group_name ORDER BY finished_at DESC))[1],
                       count(*),
                       (array_agg(seconds ORDER BY finished_at DESC))[1],
                       avg(seconds), min(seconds), max(seconds)
                  FROM {TABLE_RESULTS}
                 WHERE run_id = ANY(%s) AND status = 'copied' AND seconds IS NOT NULL
                 GROUP BY table_name
                 ORDER BY avg(seconds) DESC, table_name""",
            (run_ids,),
        )
        trends = [TableTrend(t, g or "", int(n), float(last), float(avg), float(lo), float(hi))
                  for t, g, n, last, avg, lo, hi in cur.fetchall()]
        changes = _schema_changes(cur, run_ids)
    conn.rollback()
    return History(runs, trends, "ledger", schema_changes=changes)


def _schema_changes(cur, run_ids: list[str]) -> list[SchemaChange]:
    """Each definition the given runs recorded, compared with the one recorded before it for
    the same table (the comparison the worker made that night)."""
    cur.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (TABLE_DEFINITIONS,))
    if not cur.fetchone()[0] or not run_ids:
        return []
    cur.execute(
        f"""SELECT run_id, table_name, before, definition FROM (
                SELECT run_id, table_name, definition, recorded_at,
                       lag(definition) OVER (PARTITION BY table_name
                                             ORDER BY recorded_at) AS before
                  FROM {TABLE_DEFINITIONS}) d
             WHERE run_id = ANY(%s) AND before IS NOT NULL
             ORDER BY recorded_at DESC, table_name""",
        (run_ids,),
    )
    found = []
    for run_id, table, before, after in cur.fetchall():
        phrases = drift_changes(before, after)
        if phrases:
            found.append(SchemaChange(run_id, table, phrases))
    return found


def timings(target_dsn: str, run_id: str | None) -> RunTimings:
    from nightcopy.engine.connection import connect, redact_dsn

    conn = connect(target_dsn, "target", "nightcopy timings")
    try:
        return run_timings_from_ledger(conn, run_id, redact_dsn(target_dsn))
    finally:
        conn.close()


def history(target_dsn: str, nights: int) -> History:
    from nightcopy.engine.connection import connect, redact_dsn

    conn = connect(target_dsn, "target", "nightcopy history")
    try:
        return history_from_ledger(conn, nights, redact_dsn(target_dsn))
    finally:
        conn.close()
