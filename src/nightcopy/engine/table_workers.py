"""The worker loop: the tables copied `jobs` at a time, largest first.

Each worker has its own source connection (in the run's shared snapshot) and its own target
connection. A lost connection is reopened and the table retried (up to `retries` times);
every other failure is reported once, and the worker goes on with the next table.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

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
from nightcopy.engine.snapshot import Snapshot
from nightcopy.engine.table_copy import TableCopier
from nightcopy.engine.table_job import TableOutcome
from nightcopy.engine.table_model import TableDef
from nightcopy.errors import NightcopyError


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

    def failed(self, d: TableDef, message: str, conn: connection | None, attempts: int = 1
               ) -> None:
        """Report the failure and record it in the ledger (when the target is reachable)."""
        with self.lock:
            out = TableOutcome(d.ref.qualified, "failed", error=message, attempts=attempts)
            self.by_table[d.ref.qualified] = out
            self.events.emit("table_failed", **out.event_fields())
            self.events.say(f"nightcopy: {d.ref.qualified} failed: {message}")
            if conn is not None and not conn.closed:
                try:
                    self.copier.record_failure(conn, out)
                except psycopg2.Error:
                    conn.rollback()


@dataclass
class WorkerPool:
    snapshot: Snapshot
    target_dsn: str
    application_name: str
    copier: TableCopier
    outcomes: Outcomes
    events: EventWriter
    retries: int  # further tries of a table whose connection was lost

    def copy_all(self, tables: list[TableDef], jobs: int) -> None:
        work: queue.Queue[TableDef] = queue.Queue()
        # A hierarchy is one unit (tables: the units' first tables): its size is its tables'.
        for d in sorted(tables, key=lambda d: sum(m.ref.size_bytes for m in d.unit),
                        reverse=True):
            work.put(d)
        threads = [threading.Thread(target=_Worker(self).run, args=(work,),
                                    name=f"nightcopy-worker-{i}", daemon=True)
                   for i in range(max(1, min(jobs, work.qsize())))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def connect_target(self) -> Connection:
        return connect(self.target_dsn, "target", self.application_name,
                       settings=TARGET_SETTINGS)


class _Worker:
    """One worker thread and its two connections, kept from table to table."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.src: Connection | None = None
        self.tgt: Connection | None = None

    def run(self, work: queue.Queue[TableDef]) -> None:
        try:
            while True:
                try:
                    d = work.get_nowait()
                except queue.Empty:
                    return
                self._copy(d)
        finally:
            for conn in (self.src, self.tgt):
                if conn is not None and not conn.closed:
                    conn.close()

    def _copy(self, d: TableDef) -> None:
        pool = self.pool
        attempts = 0
        while True:
            attempts += 1
            try:
                src, tgt = self._open_connections(d)
                for m in d.unit:
                    pool.events.emit("table_started", table=m.ref.qualified,
                                     attempt=attempts, size_bytes=m.ref.size_bytes)
                for out in pool.copier.copy(src, tgt, d):
                    out.attempts = attempts
                    pool.outcomes.copied(out)
                return
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
                for m in d.unit:  # a hierarchy fails as a whole: its transaction did
                    pool.outcomes.failed(m, message, self.tgt, attempts)
                return

    def _open_connections(self, d: TableDef) -> tuple[Connection, Connection]:
        """The worker's connections, reopened where they were lost or never opened."""
        if self.src is None or self.src.closed:
            self.src, fresh = self.pool.snapshot.open_worker_connection(
                self.pool.application_name)
            if fresh:
                self.pool.events.warn("the source snapshot was lost: the remaining tables of "
                                      "this worker are read from a new snapshot",
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
        return explain(d.ref.qualified, cause, side), False
