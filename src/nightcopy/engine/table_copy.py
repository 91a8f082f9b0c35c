"""How the tables are copied on the target: a load per table, a swap per unit (docs/swap.md).

--strategy swap, in two phases:
- load (one transaction per table, `--jobs` at a time): look at what the target has (a short
  transaction of its own, committed before anything is locked for longer), then build the
  staged table and commit it in its staging schema; the reporting table is not touched.
- swap (one transaction per swap unit, once all of the unit's tables are loaded): the unit's
  locks in the global order (swap_units), each table looked at again under them and swapped
  in, the ledger rows written, one commit: every table of the unit flips at once.

--strategy truncate: one transaction per unit: its locks, then each table truncated and loaded
in place, the ledger rows, one commit.

The run lock (two runs never copy the same table at once) is the invocation's (table_locks).
A staged table outlives its load's transaction: the unit's failure drops it, and one a killed
run left behind is dropped by the next run (drop_staged_leftovers).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection, cursor

from nightcopy.engine import (
    freshness,
    matviews,
    schema_drift,
    shrink_guard,
    swap_strategy,
    truncate_strategy,
)
from nightcopy.engine.connection import Connection, apply_settings
from nightcopy.engine.events import EventWriter
from nightcopy.engine.ledger import RECORD_TABLE_SQL
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.sql_names import qualified_name
from nightcopy.engine.swap_units import (
    FURTHER_LOCK_TIMEOUT_MS,
    Closure,
    Holder,
    cancel_blockers,
    describe_holders,
    holders,
    lock_budget,
    lock_closure,
    read_closure,
)
from nightcopy.engine.table_guard import TableGuard
from nightcopy.engine.table_job import CopySettings, TableOutcome
from nightcopy.engine.table_load import TableLoad
from nightcopy.engine.table_locks import release_run_lock, try_run_lock, with_lock_retries
from nightcopy.engine.table_model import KIND_NAMES, TableDef
from nightcopy.engine.table_units import children_first
from nightcopy.engine.target_catalog import inspection
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.engine.target_ddl import STAGE_PREFIX, stage_schema, staged
from nightcopy.errors import TableError


@dataclass
class LoadedTable:
    """A table whose staged copy is committed, waiting for its unit's swap."""
    table: TableDef
    out: TableOutcome
    started: float  # time.monotonic() of its load's start
    old: TargetTable | None = None  # what the target had under its name when the load began


class UnitHooks:
    """Where work on objects over a unit's tables joins the two phases (materialized views:
    engine/matviews.py builds replacements over the staged tables and swaps them in). The
    defaults do nothing."""

    def after_loads(self, tgt: Connection, loaded: list[LoadedTable]) -> None:
        """Once every table of the unit is staged and committed, before the swap's locks: build
        what reads the staged tables (commit it, or keep nothing locked that readers use)."""

    def swap_in(self, cur: cursor, loaded: list[LoadedTable]) -> None:
        """In the swap transaction, after the unit's locks and before any old object is
        dropped (a matview over the old table must be replaced before DROP TABLE)."""


class TableCopier:
    def __init__(self, settings: CopySettings, events: EventWriter, listed: set[str],
                 target_roles: set[str], guard: TableGuard, hooks: UnitHooks | None = None):
        self.settings = settings
        self.guard = guard  # which existing target tables this invocation may replace
        self.events = events
        self.listed = listed
        self.target_roles = target_roles
        self.hooks = hooks or UnitHooks()

    # ------------------------------------------------------------------ swap: load phase
    def load(self, src: Connection, tgt: Connection, d: TableDef) -> list[LoadedTable]:
        """The staged copy of `d`, or of the inheritance hierarchy it leads (table_units:
        parents first, in one transaction, each child's staged table INHERITS its staged
        parents), committed; each table's LoadedTable in that order."""
        members = d.unit
        started = time.monotonic()
        outs = [TableOutcome(m.ref.qualified, "copied", format="binary" if m.binary else "text")
                for m in members]
        try:
            olds = [self._look(tgt, m) for m in members]
            cur = tgt.cursor()
            apply_settings(cur, tgt.nightcopy_settings, local=True)
            for m, old, out in zip(members, olds, outs, strict=True):
                self.guard.before_load(cur, m, old)
                schema_drift.report(src, cur, self.events, m, old, self.settings.schema_changes,
                                    self.settings.sensitive_column_patterns)
                swap_strategy.build_staged(TableLoad(src, cur, m, out, self.settings,
                                                     self.events), old)
                # Before the staged copy commits: refused, it is rolled back and the unit not
                # swapped.
                shrink_guard.check_loaded(cur, self.events, self.settings.shrink, m, out.rows,
                                          old)
                freshness.report(cur, self.events, self._freshness(m), m,
                                 staged(m.ref.schema, m.ref.name), self.settings.stale_tables)
            tgt.commit()
        except BaseException:
            _rollback_quietly(tgt)
            raise
        return [LoadedTable(m, out, started, old)
                for m, out, old in zip(members, outs, olds, strict=True)]

    # ------------------------------------------------------------------ swap: swap phase
    def swap_unit(self, src: Connection, tgt: Connection, loaded: list[LoadedTable]
                  ) -> list[TableOutcome]:
        """Swap the unit's staged tables in, in one transaction (all or none)."""
        names = [item.table.ref.qualified for item in loaded]

        self.hooks.after_loads(tgt, loaded)
        unit_matviews = self._prepare_matviews(tgt, loaded, names[0])

        unit = frozenset(names)
        by_table = {id(item.table): item for item in loaded}

        def swap_all(cur: cursor) -> None:
            # A failed try (a lock timeout after some tables were swapped) is rolled back to
            # its savepoint, old materialized views included: forget which were replaced, or
            # the retry would skip them and fail on DROP TABLE.
            unit_matviews.done.clear()
            self.hooks.swap_in(cur, loaded)
            # Children first: an old parent can be dropped once its old children are (the new
            # children inherit the staged parents, which move in after them).
            for item in (by_table[id(d)] for d in children_first([i.table for i in loaded])):
                d = item.table
                current = inspection.inspect(cur, d.ref.schema, d.ref.name, self.listed)
                _refuse_non_table(d, current)
                # Under the unit's locks: the table to replace is the one checked here.
                self.guard.before_load(cur, d, current)
                swap_strategy.swap_in(TableLoad(src, cur, d, item.out, self.settings,
                                                self.events), current, self.listed,
                                      self.target_roles, unit_matviews, unit)
                self.guard.after_load(cur, d.ref, self.settings.run_id, current)
                schema_drift.record(src, cur, d, self.settings.run_id)

        outs = [item.out for item in loaded]
        what = "take the lock for the swap" if len(names) == 1 else "take the locks for the swap"
        self._in_unit_transaction(tgt, names, outs, swap_all, what,
                                  started=[item.started for item in loaded])
        return outs

    # ------------------------------------------------------------------ truncate
    def truncate_unit(self, src: Connection, tgt: Connection, tables: list[TableDef]
                      ) -> list[TableOutcome]:
        """Truncate and load the unit's tables in place, in one transaction."""
        outs = [TableOutcome(d.ref.qualified, "copied", format="binary" if d.binary else "text")
                for d in tables]
        started = time.monotonic()
        # Refuse what is not a table before locking anything.
        looked = {d.ref.qualified: self._look(tgt, d) for d in tables}
        unit = frozenset(looked)
        # An inheritance hierarchy with a table new to the target is built whole, staged, and
        # swapped in (a staged child can only inherit staged parents); the others in place.
        rebuilt = {m.ref.qualified for d in tables if d.hierarchy
                   if any(looked[x.ref.qualified] is None for x in d.unit) for m in d.unit}

        def load_all(cur: cursor) -> None:
            pass  # the loads run after the locks' savepoint, below

        cur = self._in_unit_transaction(tgt, [d.ref.qualified for d in tables], outs, load_all,
                                        "lock the table for the truncate" if len(tables) == 1
                                        else "lock the tables for the truncate", started=[])
        try:
            cur.execute(f"SET LOCAL lock_timeout = '{FURTHER_LOCK_TIMEOUT_MS}ms'")
            staged_loads: dict[int, tuple[TableLoad, TargetTable | None]] = {}
            for d, out in zip(tables, outs, strict=True):
                current = inspection.inspect(cur, d.ref.schema, d.ref.name, self.listed)
                _refuse_non_table(d, current)
                self.guard.before_load(cur, d, current)
                schema_drift.report(src, cur, self.events, d, current,
                                    self.settings.schema_changes,
                                    self.settings.sensitive_column_patterns)
                load = TableLoad(src, cur, d, out, self.settings, self.events)
                if d.ref.qualified in rebuilt:
                    swap_strategy.build_staged(load, current)
                    shrink_guard.check_loaded(cur, self.events, self.settings.shrink, d,
                                              out.rows, current)
                    staged_loads[id(d)] = (load, current)
                    continue
                if current is not None:
                    truncate_strategy.truncate_and_load(load, current, unit)
                else:
                    swap_strategy.build_and_swap(load, None, self.listed, self.target_roles)
                freshness.report(cur, self.events, self._freshness(d), d, d.ref.qualified,
                                 self.settings.stale_tables)
                self.guard.after_load(cur, d.ref, self.settings.run_id, current)
                schema_drift.record(src, cur, d, self.settings.run_id)
            for d in children_first([t for t in tables if id(t) in staged_loads]):
                load, current = staged_loads[id(d)]
                swap_strategy.swap_in(load, current, self.listed, self.target_roles, unit=unit)
                self.guard.after_load(cur, d.ref, self.settings.run_id, current)
                schema_drift.record(src, cur, d, self.settings.run_id)
            for out in outs:
                out.seconds = time.monotonic() - started
                self._record(cur, out)
            tgt.commit()
        except BaseException:
            _rollback_quietly(tgt)
            raise
        return outs

    # ------------------------------------------------------------------ shared
    def _in_unit_transaction(self, tgt: Connection, names: list[str], outs: list[TableOutcome],
                             body: Callable[[cursor], None], what: str, started: list[float]
                             ) -> cursor:
        """The unit's locks (retried with backoff, blockers cancelled when configured), then
        body(cur) under them; given each table's start (`started`), the ledger rows and the
        commit too (without: the caller goes on in the transaction, the locks held)."""
        settings = self.settings
        policy = settings.lock_policy
        label = names[0] if len(names) == 1 else f"{names[0]} (with {', '.join(names[1:])})"
        cur = tgt.cursor()
        try:
            apply_settings(cur, tgt.nightcopy_settings, local=True)
            budget = lock_budget(cur, policy.timeout)
            closure = Closure()
            seen: list[Holder] = []
            first_failure: list[float] = []
            cancelled: set[int] = set()

            def locked_body() -> None:
                nonlocal closure
                t0 = time.monotonic()
                # Catalog reads only (no relation lock) before the ordered locks.
                closure = read_closure(cur, names)
                lock_closure(cur, closure, budget)
                for out in outs:
                    out.add_lock_wait(time.monotonic() - t0)
                body(cur)
                cur.execute(f"SET LOCAL lock_timeout = '{FURTHER_LOCK_TIMEOUT_MS}ms'")

            def on_wait(seconds: float) -> None:
                for out in outs:
                    out.add_lock_wait(seconds)

            def on_failed_try(exc: BaseException) -> None:
                seen[:] = holders(cur, closure)
                if not first_failure:
                    first_failure.append(time.monotonic())
                if not isinstance(exc, psycopg2.errors.LockNotAvailable):
                    # A deadlock or serialization failure with another session: retried.
                    held = describe_holders(seen) or "no holder left"
                    self.events.warn(f"{label}: {type(exc).__name__} while taking the locks "
                                     f"for the swap, retrying ({held})", names[0])
                after = settings.cancel_blockers_after
                if after is not None and time.monotonic() - first_failure[0] >= after:
                    fresh = [h for h in seen if h.pid not in cancelled]
                    for h in cancel_blockers(cur, fresh):
                        cancelled.add(h.pid)
                        self.events.warn(
                            f"{label}: cancelled the query of {h.identify()}: it held "
                            f"{h.mode} on {h.relation} for over {after:g}s of lock tries "
                            "(--cancel-blockers-after)", names[0])

            with_lock_retries(cur, locked_body, policy, label, what, on_wait, on_failed_try,
                              lambda: describe_holders(seen))
            if started:
                for out, t0 in zip(outs, started, strict=True):
                    out.seconds = time.monotonic() - t0
                    self._record(cur, out)
                tgt.commit()
        except BaseException:
            _rollback_quietly(tgt)
            raise
        return cur

    def _prepare_matviews(self, tgt: Connection, loaded: list[LoadedTable], label: str
                          ) -> swap_strategy.UnitMatviews:
        """The materialized views over the unit's tables, rebuilt over the staged tables (as
        their owners) in the swap's transaction before its locks: a failed swap rolls them
        back with it, and nothing readers use is locked while they are built."""
        found = {m.oid: m for item in loaded if item.old is not None for m in item.old.matviews}
        if not found:
            return swap_strategy.UnitMatviews()
        staged_of: dict[str, str] = {}
        for item in loaded:
            d = item.table
            staged_of[d.ref.qualified] = staged(d.ref.schema, d.ref.name)
            for p in d.partitions:
                staged_of[p.qualified] = staged(p.schema, p.name)
        cur = tgt.cursor()
        try:
            apply_settings(cur, tgt.nightcopy_settings, local=True)
            prepared = matviews.prepare(cur, list(found.values()), staged_of,
                                        self.settings.trust, label)
        except BaseException:
            _rollback_quietly(tgt)
            raise
        return swap_strategy.UnitMatviews(prepared)

    def _look(self, tgt: Connection, d: TableDef) -> TargetTable | None:
        """What the target has under the table's name, read in a transaction of its own that
        commits at once: reading a view's definition locks the view, and no such lock may be
        kept into a load or held before a swap's ordered locks."""
        cur = tgt.cursor()
        try:
            apply_settings(cur, tgt.nightcopy_settings, local=True)
            old = inspection.inspect(cur, d.ref.schema, d.ref.name, self.listed)
            tgt.commit()
        except BaseException:
            _rollback_quietly(tgt)
            raise
        finally:
            cur.close()
        _refuse_non_table(d, old)
        return old

    def drop_staged(self, tgt: connection, tables: list[TableDef]) -> None:
        """Drop the staged copies of a unit that was not swapped (best effort: what is left
        is dropped by the next run)."""
        try:
            with tgt.cursor() as cur:
                cur.execute(f"SET LOCAL lock_timeout = '{self.settings.lock_policy.timeout_ms}ms'")
                for d in children_first(tables):  # a staged parent after its children
                    cur.execute(f"DROP TABLE IF EXISTS {staged(d.ref.schema, d.ref.name)}")
            tgt.commit()
        except psycopg2.Error:
            _rollback_quietly(tgt)

    def _freshness(self, d: TableDef) -> freshness.FreshnessCheck | None:
        return self.settings.freshness.get((d.ref.schema, d.ref.name))

    def _record(self, cur: cursor, out: TableOutcome) -> None:
        cur.execute(RECORD_TABLE_SQL, {
            "run_id": self.settings.run_id, "table": out.table,
            "group": self.settings.group or "", "status": out.status, "rows": out.rows,
            "bytes": out.bytes, "seconds": out.seconds, "copy_seconds": out.copy_seconds,
            "index_seconds": out.index_seconds, "lock_wait_seconds": out.lock_wait_seconds,
            "error": out.error, "started_at": out.started_at})

    def record_failure(self, tgt: connection, out: TableOutcome) -> None:
        with tgt.cursor() as cur:
            self._record(cur, out)
        tgt.commit()


def _refuse_non_table(d: TableDef, old: TargetTable | None) -> None:
    if old is not None and old.kind not in ("r", "p"):
        raise TableError(
            f"{d.ref.qualified} on the target is {KIND_NAMES.get(old.kind, 'not a table')}"
            ", not a table; drop or rename it there, or remove the table from the list")


def _rollback_quietly(tgt: connection) -> None:
    # psycopg2.Error: the connection is gone and the server rolls back on its own.
    with contextlib.suppress(psycopg2.Error):
        tgt.rollback()


def drop_staged_leftovers(tgt: connection, own: set[str]) -> list[str]:
    """Staged tables a killed or failed run left behind: those of this run's tables (their run
    lock is this run's), and those of other tables whose run lock is free (no run is loading
    them). The staging schemas are nightcopy's own (schema_owners), so anything in them is a
    leftover or a load in progress; which it is, the run lock says."""
    dropped = []
    with tgt.cursor() as cur:
        found = fetch_all(cur, """
            SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname LIKE %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             -- a staged inheritance child before its staged parents (DROP refuses a parent
             -- with children): the deepest first
             ORDER BY (WITH RECURSIVE up AS (
                           SELECT c.oid AS oid, 0 AS depth
                           UNION ALL
                           SELECT i.inhparent, up.depth + 1 FROM up
                             JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.oid
                            WHERE up.depth < 50)
                       SELECT max(depth) FROM up) DESC, 1, 2""",
                      (STAGE_PREFIX.replace("_", "\\_") + "%",))
        for staging_schema, name in found:
            schema = staging_schema[len(STAGE_PREFIX):]
            if stage_schema(schema) != staging_schema:
                continue  # a hashed staging schema name (a long schema name): not mapped back
            table = qualified_name(schema, name)
            mine = table in own
            if not mine and not try_run_lock(cur, table):
                continue  # another run is loading it right now
            try:
                cur.execute("SAVEPOINT nightcopy_leftover")
                cur.execute(f"SET LOCAL lock_timeout = '{FURTHER_LOCK_TIMEOUT_MS * 100}ms'")
                cur.execute(f"DROP TABLE IF EXISTS {staged(schema, name)}")
                cur.execute("RELEASE SAVEPOINT nightcopy_leftover")
                dropped.append(staged(schema, name))
            except psycopg2.Error:
                cur.execute("ROLLBACK TO SAVEPOINT nightcopy_leftover")
            finally:
                if not mine:
                    release_run_lock(cur, table)
    tgt.commit()
    return dropped
