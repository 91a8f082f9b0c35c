"""The worker loop: the tables loaded `jobs` at a time, the swap units swapped as they fill.

Each worker has its own source connection (in the run's shared snapshot) and its own target
connection. Under --strategy swap a worker takes the next table (units largest first, each
unit's tables largest first; an inheritance hierarchy's tables are one item, loaded in one
transaction), loads it (its staged copy committed), and when that was the last
table its unit waited for, swaps the whole unit in at once (table_copy). A unit one of whose
tables failed is not swapped: its other tables keep last night's rows (and say why), so a view
over them keeps showing one night. Under --strategy truncate a worker takes a whole unit and
loads it in one transaction. A lost connection is reopened and the step retried (up to
`retries` times); every other failure is reported once, and the worker goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg2
from psycopg2.extensions import connection

from nightcopy.engine.connection import (
    TARGET_SETTINGS,
    Connection,
    close_quietly,
    connect,
    is_broken,
    looks_lost,
)
from nightcopy.engine.copy_stream import SourceStreamError
from nightcopy.engine.events import EventWriter
from nightcopy.engine.failure_messages import explain, pg_message
from nightcopy.engine.invocation_report import is_transient
from nightcopy.engine.snapshot import Snapshot
from nightcopy.engine.swap_units import SwapUnit
from nightcopy.engine.table_copy import LoadedTable, TableCopier
from nightcopy.engine.table_job import TableOutcome
from nightcopy.engine.table_model import TableDef
from nightcopy.errors import NightcopyError

T = TypeVar("T")


def _kept_because(d: TableDef, unit: SwapUnit, failed: list[str]) -> str:
    return (f"{d.ref.qualified}: loaded but not swapped in (it keeps last night's rows): "
            f"{', '.join(failed)} of the same swap unit ({', '.join(unit.names)}, tables a "
            "target view links) failed, and the unit flips at once so that "
            "those views never show two nights; fix that table, or use --swap-scope table")


def _failed_with(d: TableDef, tables: list[TableDef], message: str) -> str:
    others = ", ".join(t.ref.qualified for t in tables if t is not d)
    return (f"{d.ref.qualified}: not swapped in (it keeps last night's rows): its swap unit "
            f"(with {others}) failed as one: {message}")


@dataclass
class Outcomes:
    """Each table's outcome, as the workers report it (safe to share between them)."""
    events: EventWriter
    copier: TableCopier
    by_table: dict[str, TableOutcome] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def skipped(self, table: str, reason: str) -> None:
        with self.lock:
            self.by_table[table] = TableOutcome(table, "skipped")
        self.events.emit("table_skipped", table=table, reason=reason)

    def copied(self, out: TableOutcome) -> None:
        with self.lock:
            self.by_table[out.table] = out
        self.events.emit("table_copied", **out.event_fields())

    def failed(self, d: TableDef, message: str, conn: connection | None, attempts: int = 1,
               transient: bool = False) -> None:
        """Report the failure and record it in the ledger (when the target is reachable)."""
        with self.lock:
            out = TableOutcome(d.ref.qualified, "failed", error=message, attempts=attempts,
                               transient=transient)
            self.by_table[d.ref.qualified] = out
            self.events.emit("table_failed", **out.event_fields())
            self.events.say(f"nightcopy: {d.ref.qualified} failed: {message}")
            if conn is not None and not conn.closed:
                try:
                    self.copier.record_failure(conn, out)
                except psycopg2.Error:
                    conn.rollback()


def is_recovery_conflict(exc: BaseException) -> bool:
    """A hot standby's "canceling statement due to conflict with recovery" (SQLSTATE 40001,
    which a serialization failure shares: the text tells them apart)."""
    return getattr(exc, "pgcode", None) == "40001" and "conflict with recovery" in str(exc)


class UnitProgress:
    """Which tables each unit still waits for (shared by the workers)."""

    def __init__(self, units: list[SwapUnit]):
        self.lock = threading.Lock()
        self.unit_of = {d.ref.qualified: unit for unit in units for d in unit.tables}
        self.waiting = {id(unit): {d.ref.qualified for d in unit.tables} for unit in units}
        self.loaded: dict[int, list[LoadedTable]] = {id(unit): [] for unit in units}
        self.failed: dict[int, list[str]] = {id(unit): [] for unit in units}

    def done(self, d: TableDef, loaded: list[LoadedTable] | None
             ) -> tuple[SwapUnit, list[LoadedTable], list[str]] | None:
        """Record the load of `d` and of the hierarchy it leads (None: it failed); the unit,
        its loaded tables and its failed ones when these were the last the unit waited for."""
        unit = self.unit_of[d.ref.qualified]
        key = id(unit)
        with self.lock:
            for member in d.unit:
                self.waiting[key].discard(member.ref.qualified)
            if loaded is not None:
                self.loaded[key].extend(loaded)
            else:
                self.failed[key].extend(member.ref.qualified for member in d.unit)
            if self.waiting[key]:
                return None
        order = {t.ref.qualified: i for i, t in enumerate(unit.tables)}
        return (unit, sorted(self.loaded[key], key=lambda x: order[x.table.ref.qualified]),
                self.failed[key])


@dataclass
class WorkerPool:
    snapshot: Snapshot
    target_dsn: str
    application_name: str
    copier: TableCopier
    outcomes: Outcomes
    events: EventWriter
    retries: int  # further tries of a table whose connection was lost
    progress: UnitProgress = field(init=False)
    stopping: threading.Event = field(default_factory=threading.Event)

    def copy_all(self, units: list[SwapUnit], jobs: int, truncate: bool) -> None:
        """Every unit's tables: loaded and swapped (swap), or truncated and loaded (truncate,
        one unit per work item)."""
        work: queue.Queue[TableDef | SwapUnit] = queue.Queue()
        self.progress = UnitProgress(units)
        for unit in units:
            if truncate:
                work.put(unit)
                continue
            # A hierarchy's tables load in one work item, its first table's (table_units).
            members = {id(m) for d in unit.tables for m in d.hierarchy}
            for d in sorted((d for d in unit.tables if id(d) not in members),
                            key=lambda d: sum(m.ref.size_bytes for m in d.unit), reverse=True):
                work.put(d)
        threads = [threading.Thread(target=_Worker(self).run, args=(work,),
                                    name=f"nightcopy-worker-{i}", daemon=True)
                   for i in range(max(1, min(jobs, work.qsize())))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            # Stopped (engine/invocation records it): no further table starts; the ones in
            # flight end with the process, their transactions rolled back by the server.
            self.stopping.set()
            raise

    def connect_target(self) -> Connection:
        return connect(self.target_dsn, "target", self.application_name,
                       settings=TARGET_SETTINGS)


class _Worker:
    """One worker thread and its two connections, kept from table to table."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.src: Connection | None = None
        self.tgt: Connection | None = None

    def run(self, work: queue.Queue[TableDef | SwapUnit]) -> None:
        try:
            while not self.pool.stopping.is_set():
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                if isinstance(item, SwapUnit):
                    self._truncate_unit(item)
                else:
                    self._load(item)
        finally:
            for conn in (self.src, self.tgt):
                if conn is not None and not conn.closed:
                    conn.close()

    def _load(self, d: TableDef) -> None:
        """Load one table; swap its unit when it was the last one the unit waited for."""
        loaded = self._with_retries(
            d, d.unit, lambda src, tgt, attempt: self._load_once(src, tgt, d, attempt))
        ready = self.pool.progress.done(d, loaded)
        if ready is not None:
            self._swap_unit(*ready)

    def _load_once(self, src: Connection, tgt: Connection, d: TableDef, attempt: int
                   ) -> list[LoadedTable]:
        for m in d.unit:
            self.pool.events.emit("table_started", table=m.ref.qualified, attempt=attempt,
                                  size_bytes=m.ref.size_bytes)
        loaded = self.pool.copier.load(src, tgt, d)
        for item in loaded:
            item.out.attempts = attempt
        return loaded

    def _swap_unit(self, unit: SwapUnit, loaded: list[LoadedTable], failed: list[str]) -> None:
        pool = self.pool
        if not loaded:
            return
        if failed:
            # A consistent night: the unit's other tables keep last night's rows too.
            for item in loaded:
                pool.outcomes.failed(item.table, _kept_because(item.table, unit, failed),
                                     self.tgt, item.out.attempts)
            self._drop_staged([item.table for item in loaded])
            return
        first = loaded[0].table
        outs = self._with_retries(first, [item.table for item in loaded],
                                  lambda src, tgt, _attempt: pool.copier.swap_unit(src, tgt,
                                                                                   loaded))
        if outs is None:
            self._drop_staged([item.table for item in loaded])
            return
        for out in outs:
            pool.outcomes.copied(out)

    def _truncate_unit(self, unit: SwapUnit) -> None:
        pool = self.pool

        def once(src: Connection, tgt: Connection, attempt: int) -> list[TableOutcome]:
            for d in unit.tables:
                pool.events.emit("table_started", table=d.ref.qualified, attempt=attempt,
                                 size_bytes=d.ref.size_bytes)
            outs = pool.copier.truncate_unit(src, tgt, unit.tables)
            for out in outs:
                out.attempts = attempt
            return outs

        outs = self._with_retries(unit.tables[0], unit.tables, once)
        for out in outs or []:
            pool.outcomes.copied(out)

    def _drop_staged(self, tables: list[TableDef]) -> None:
        if self.tgt is not None and not self.tgt.closed:
            self.pool.copier.drop_staged(self.tgt, tables)

    def _with_retries(self, d: TableDef, tables: list[TableDef],
                      step: Callable[[Connection, Connection, int], list[T]]) -> list[T] | None:
        """step(src, tgt, attempt), retried after a lost connection; None when it failed (each
        of `tables` reported failed, naming the others of its unit)."""
        pool = self.pool
        attempts = 0
        while True:
            attempts += 1
            try:
                src, tgt = self._open_connections(d)
                return step(src, tgt, attempts)
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                message, lost = self._diagnose(d, exc)
                if lost and attempts <= pool.retries:
                    pool.events.warn(f"{message}; retrying ({attempts}/{pool.retries})",
                                     d.ref.qualified)
                    time.sleep(min(30.0, 2.0 ** attempts))
                    continue
                if self.tgt is None:
                    try:
                        self.tgt = pool.connect_target()
                    except NightcopyError:
                        self.tgt = None
                for t in tables:
                    pool.outcomes.failed(t, message if t is d else _failed_with(t, tables, message),
                                         self.tgt, attempts, transient=lost or is_transient(exc))
                return None

    def _open_connections(self, d: TableDef) -> tuple[Connection, Connection]:
        """The worker's connections, reopened where they were lost or never opened."""
        if self.src is None or self.src.closed:
            self.src, fresh = self.pool.snapshot.open_worker_connection(
                self.pool.application_name)
            if fresh:
                why = (" (the source is a hot standby: a recovery conflict ended it; set "
                       "hot_standby_feedback = on on the replica)"
                       if self.pool.snapshot.standby is not None else "")
                self.pool.events.warn("the source snapshot was lost: the remaining tables of "
                                      f"this worker are read from a new snapshot{why}",
                                      d.ref.qualified)
        if self.tgt is None or self.tgt.closed:
            self.tgt = self.pool.connect_target()
        return self.src, self.tgt

    def _diagnose(self, d: TableDef, exc: Exception) -> tuple[str, bool]:
        """(the one-line message, whether a connection was lost); drops broken connections."""
        from_source = isinstance(exc, SourceStreamError)
        cause = exc.cause if isinstance(exc, SourceStreamError) else exc
        src_lost = is_broken(self.src) or (from_source and looks_lost(cause))
        tgt_lost = is_broken(self.tgt) or (not from_source and looks_lost(cause))
        side = "source" if src_lost or (from_source and not tgt_lost) else "target"
        # A source connection whose COPY failed is in an unknown protocol state: replace it
        # (it re-imports the run's snapshot).
        if self.src is not None and (src_lost or from_source):
            close_quietly(self.src)
            self.src = None
        if self.tgt is not None and tgt_lost:
            close_quietly(self.tgt)
            self.tgt = None
        if src_lost or tgt_lost:
            return (f"{d.ref.qualified}: the connection to the {side} was lost "
                    f"({pg_message(cause)})"), True
        if from_source and is_recovery_conflict(cause):
            # A hot standby cancelled the read: the primary's cleanup removed rows the snapshot
            # still needed. Retried like a lost connection (the source session was replaced
            # above; it re-imports the snapshot, or takes a new one when that is gone too).
            return (f"{d.ref.qualified}: the hot standby source cancelled the read (a recovery "
                    f"conflict: {pg_message(cause)}); set hot_standby_feedback = on on the "
                    "replica"), True
        return explain(d.ref.qualified, cause, side), False
