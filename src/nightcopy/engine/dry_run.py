"""`nightcopy copy --dry-run`: what the invocation would copy, and nothing written anywhere.

Everything the real invocation checks before its first write has been checked already
(engine/invocation.copy_tables: the table list, the connections, source != target, each table's
definition, what its expressions may call, masks). This module adds what the night would decide
next, read without writing: tables this run id already copied (resumed), tables a glob matches
but nightcopy did not create on the target (refused without --adopt), and the swap units (the
tables that flip together). It prints one `table_planned` event per table and a `dry_run_summary`;
it creates no ledger, takes no lock, stages nothing and writes no report.

The snapshot plan is the real one: the invocation's tables are all read in one exported source
snapshot (REPEATABLE READ), by up to `jobs` sessions at once.
"""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine import ledger
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.snapshot import Snapshot
from nightcopy.engine.swap_units import plan_units
from nightcopy.engine.table_guard import (
    TableGuard,
    named,
    unmanaged_glob_match,
    unmanaged_on_target,
)
from nightcopy.engine.table_model import KIND_NAMES, TableDef, TableRef
from nightcopy.engine.table_units import form_units, spread_failures

_KINDS = {"r": "table", "p": "partitioned table"}


def _unmanaged(tgt: connection, tables: list[TableRef], guard: TableGuard) -> dict[int, str]:
    """The tables a glob would replace on the target although nightcopy did not create them
    (the check `nightcopy validate` makes, with the worker's message)."""
    candidates = [t for t in tables if not guard.adopt and not named(guard.specs, t)]
    if not candidates:
        return {}
    unmanaged = unmanaged_on_target(tgt, candidates)
    return {t.oid: unmanaged_glob_match(guard.specs, t) for t in candidates
            if t.qualified in unmanaged}


def _row_estimates(snapshot: Snapshot, oids: list[int]) -> dict[int, int]:
    """The source's planner estimate of each table's rows (pg_class.reltuples; a partitioned
    table's is its partitions'); absent where the table was never analyzed."""
    with snapshot.conn.cursor() as cur:
        rows = fetch_all(cur, """
            SELECT c.oid, CASE WHEN c.relkind = 'p' THEN
                   (SELECT pg_catalog.sum(GREATEST(p.reltuples, 0))
                      FROM pg_catalog.pg_partition_tree(c.oid) t
                      JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf)
                   ELSE c.reltuples END
              FROM pg_catalog.pg_class c WHERE c.oid = ANY (%s::oid[])""", (oids,))
    return {int(oid): int(n) for oid, n in rows if n is not None and n >= 0}


def plan_invocation(*, events: EventWriter, snapshot: Snapshot, tgt: connection,
                    tables: list[TableRef], defs: dict[int, TableDef], refused: dict[int, str],
                    guard: TableGuard, run_id: str, jobs: int, strategy: str,
                    swap_scope: str) -> dict:
    """Emit the plan; return the summary (status failed when some table would fail)."""
    listed = {t.qualified for t in tables}
    done = (ledger.finished_tables(tgt, run_id) & listed
            if ledger.readable_ledger(tgt) is not None else set())
    todo_refs = [t for t in tables if t.qualified not in done]
    hierarchies = form_units([defs[t.oid] for t in todo_refs], events.warn, tgt.server_version)
    failing = spread_failures(hierarchies, {**refused, **_unmanaged(tgt, todo_refs, guard)})
    todo = [d for u in hierarchies for d in u.unit if d.ref.oid not in failing]
    unit_of: dict[str, list[str]] = {}
    for unit in plan_units(tgt, todo, swap_scope):
        for name in unit.names:
            unit_of[name] = unit.names
    estimates = _row_estimates(snapshot, [t.oid for t in tables])
    for t in tables:
        if t.qualified in done:
            action, reason = "skip", "already copied by this run (resumed)"
        elif t.oid in failing:
            action, reason = "fail", failing[t.oid]
        else:
            action, reason = "copy", None
        events.emit("table_planned", table=t.qualified,
                    kind=_KINDS.get(t.kind, KIND_NAMES.get(t.kind, t.kind)),
                    size_bytes=t.size_bytes, rows_estimate=estimates.get(t.oid), action=action,
                    swapped_with=[n for n in unit_of.get(t.qualified, []) if n != t.qualified],
                    **({"reason": reason} if reason else {}))
    would_fail = [t.qualified for t in tables if t.oid in failing and t.qualified not in done]
    summary = {"status": "failed" if would_fail else "succeeded", "tables": len(tables),
               "copy": len(tables) - len(would_fail) - len(done),
               "skip": len(done), "fail": len(would_fail),
               "size_bytes": sum(t.size_bytes for t in tables), "jobs": jobs,
               "strategy": strategy, "swap_scope": swap_scope,
               "snapshot": f"one exported source snapshot (REPEATABLE READ), read by up to "
                           f"{min(jobs, max(len(todo), 1))} session(s) at once",
               "failed_tables": would_fail}
    events.emit("dry_run_summary", **summary)
    return summary
