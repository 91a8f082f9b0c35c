"""The copy engine as a library: `copy_tables(options, events)` copies a table list.

Order of work: validate everything (table list, connections, source == target, the tables and
their definitions) before writing anything to the target; then the ledger, the prerequisites
(schemas, types, sequences), the tables `jobs` at a time (largest first, each worker with its
own source connection in the shared snapshot and its own target connection), and last the
foreign keys between the copied tables.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from nightcopy.engine import catalog, ledger
from nightcopy.engine import connection as dsnlib
from nightcopy.engine import target_ddl as schema
from nightcopy.engine.copy_stream import SourceStreamError, limit_heap_retention
from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation_report import ReportWriter, write_report
from nightcopy.engine.run_id import new_run_id
from nightcopy.engine.snapshot import Snapshot
from nightcopy.engine.table_copy import CopySettings, TableCopier, TableOutcome, explain, pg_message
from nightcopy.engine.tablelist import parse_table_list
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import JOBS, LOCK_ATTEMPTS, LOCK_TIMEOUT, RETRIES, STRATEGY, VERIFY

# Target sessions: never idle in a transaction for long (a killed worker's locks go away).
TARGET_SETTINGS = {"idle_in_transaction_session_timeout": "10min", "lock_timeout": "60s"}


@dataclass
class CopyOptions:
    source_dsn: str
    target_dsn: str
    tables: str | list
    group: str | None = None
    run_id: str = field(default_factory=lambda: new_run_id())
    jobs: int = JOBS.default  # defaults: nightcopy.options, the one definition of each option
    strategy: str = STRATEGY.default
    verify: str = VERIFY.default
    report_writer: ReportWriter | None = None  # where the report goes (--report-uri)
    retries: int = RETRIES.default
    lock_timeout: float = LOCK_TIMEOUT.default
    lock_attempts: int = LOCK_ATTEMPTS.default


@dataclass
class RunResult:
    summary: dict
    outcomes: list[TableOutcome]

    @property
    def ok(self) -> bool:
        return self.summary["status"] == "succeeded"


_LOST_MARKERS = ("no message from the libpq", "server closed the connection", "ssl syscall",
                 "could not receive data", "could not send data", "connection not open",
                 "eof detected", "terminating connection", "connection already closed")


# SQLSTATEs that mean the session is gone (class 08) or the server is going away.
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def _looks_lost(exc: BaseException) -> bool:
    """Whether an error means the connection itself is gone (worth a retry)."""
    code = getattr(exc, "pgcode", None)
    if code:
        # The server answered: disk full, out of memory, a cancelled statement... are not
        # lost connections, and a retry would not help.
        return code.startswith(_LOST_STATES)
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    # libpq reports some cuts mid-COPY as a bare DatabaseError ("error with status
    # PGRES_COPY_OUT and no message from the libpq").
    return isinstance(exc, psycopg2.DatabaseError) and any(
        m in str(exc).lower() for m in _LOST_MARKERS)


def _is_broken(conn: connection | None) -> bool:
    if conn is None:
        return False
    if conn.closed:
        return True
    try:
        return conn.info.status != 0  # libpq CONNECTION_OK
    except psycopg2.Error:
        return True


def _alive(conn: connection) -> bool:
    """Ask the server: libpq learns of a restarted server only when it next talks to it."""
    if _is_broken(conn):
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.commit()
        return True
    except psycopg2.Error:
        return False


def _close_quietly(conn: connection) -> None:
    with contextlib.suppress(psycopg2.Error):
        conn.close()


def _same_database(snapshot: Snapshot, tgt: connection) -> bool:
    with tgt.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = %s"
                    " AND datname = pg_catalog.current_database()",
                    (snapshot.application_name,))
        found = cur.fetchone()[0] > 0
    tgt.commit()
    return found


def copy_tables(options: CopyOptions, events: EventWriter) -> RunResult:
    specs = parse_table_list(options.tables)
    limit_heap_retention()
    dsnlib.parse(options.source_dsn, "source")
    dsnlib.parse(options.target_dsn, "target")
    app = f"nightcopy:{options.run_id}"[:63]
    marker = f"nightcopy-snapshot-{uuid.uuid4().hex[:20]}"
    snapshot = Snapshot(options.source_dsn, marker)
    tgt: connection | None = None
    try:
        tgt = dsnlib.connect(options.target_dsn, "target", app, settings=TARGET_SETTINGS)
        if _same_database(snapshot, tgt):
            raise ConfigError("the source and the target are the same database: copying onto "
                              "itself would destroy the tables; point --target at the "
                              "reporting database")
        tables = catalog.resolve_tables(snapshot.conn, specs)
        defs = catalog.load_definitions(snapshot.conn, tables)
        catalog.check_readable(snapshot.conn, defs)
        types = catalog.load_types(snapshot.conn, {o for d in defs.values() for o in d.type_oids})
        return _run(options, events, snapshot, tgt, tables, defs, types, app)
    finally:
        snapshot.close()
        if tgt is not None:
            tgt.close()


def _run(options: CopyOptions, events: EventWriter, snapshot: Snapshot, tgt: connection,
         tables: list[catalog.TableRef], defs: dict[int, catalog.TableDef],
         types: list[catalog.TypeDef], app: str) -> RunResult:
    run_started = time.monotonic()
    started_at = datetime.now(UTC)
    try:
        ledger.ensure_ledger(tgt)
    except psycopg2.Error as exc:
        tgt.rollback()
        raise NightcopyError(f"cannot create the run ledger (schema {ledger.LEDGER_SCHEMA}) on "
                             f"the target: {pg_message(exc)}; grant the target role CREATE on "
                             "the database") from None
    ledger.start_run(tgt, options.run_id, options.group,
                     {"jobs": options.jobs, "strategy": options.strategy,
                      "verify": options.verify, "tables": len(tables)})
    done = ledger.finished_tables(tgt, options.run_id)
    events.emit("run_started", tables=len(tables), jobs=options.jobs,
                strategy=options.strategy, verify=options.verify,
                snapshot=snapshot.id, resumed=len(done & {t.qualified for t in tables}))
    outcomes: dict[str, TableOutcome] = {}
    for t in tables:
        if t.qualified in done:
            outcomes[t.qualified] = TableOutcome(t.qualified, "skipped")
            events.emit("table_skipped", table=t.qualified,
                        reason="already copied by this run (resumed)")
    todo = [defs[t.oid] for t in tables if t.qualified not in done]
    for d in todo:
        if d.inherits_from:
            events.warn(f"{d.ref.qualified} inherits from {', '.join(d.inherits_from)}: it is "
                        "copied as a table of its own with only its own rows", d.ref.qualified)
        if not d.binary:
            events.emit("table_format", table=d.ref.qualified, format="text", reason=d.text_reason)
    with tgt.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_catalog.pg_roles")
        roles = {r[0] for r in cur.fetchall()}
    tgt.commit()
    try:
        prepare_failures = schema.prepare_target(tgt, todo, types, events.warn)
    except psycopg2.Error as exc:
        tgt.rollback()
        hint = (": grant the target role CREATE on the database (for schemas) and on the "
                "tables' schemas" if getattr(exc, "pgcode", None) == "42501" else "")
        prepare_failures = {d.ref.oid: f"cannot prepare the target for the tables: "
                            f"{pg_message(exc)}{hint}" for d in todo}
    settings = CopySettings(run_id=options.run_id, group=options.group,
                            strategy=options.strategy, verify=options.verify,
                            lock_timeout=options.lock_timeout,
                            lock_attempts=options.lock_attempts)
    listed = {t.qualified for t in tables}
    copier = TableCopier(settings, events, listed, roles)

    def fail(d: catalog.TableDef, message: str, conn: connection | None, attempts: int = 1,
             seconds: float = 0.0) -> None:
        out = TableOutcome(d.ref.qualified, "failed", error=message, attempts=attempts,
                           seconds=seconds)
        outcomes[d.ref.qualified] = out
        events.emit("table_failed", **out.event_fields())
        events.say(f"nightcopy: {d.ref.qualified} failed: {message}")
        if conn is not None and not conn.closed:
            try:
                copier.record_failure(conn, out)
            except psycopg2.Error:
                conn.rollback()

    for d in todo:
        if d.ref.oid in prepare_failures:
            fail(d, prepare_failures[d.ref.oid], tgt)
    work: queue.Queue[catalog.TableDef] = queue.Queue()
    for d in sorted((d for d in todo if d.ref.oid not in prepare_failures),
                    key=lambda d: d.ref.size_bytes, reverse=True):
        work.put(d)
    lock = threading.Lock()

    def worker() -> None:
        src = tconn = None
        try:
            while True:
                try:
                    d = work.get_nowait()
                except queue.Empty:
                    return
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        if src is None or src.closed:
                            src, fresh = snapshot.open_worker_connection(app)
                            if fresh:
                                events.warn("the source snapshot was lost: the remaining "
                                            "tables of this worker are read from a new snapshot",
                                            d.ref.qualified)
                        if tconn is None or tconn.closed:
                            tconn = dsnlib.connect(options.target_dsn, "target", app,
                                                   settings=TARGET_SETTINGS)
                        events.emit("table_started", table=d.ref.qualified, attempt=attempts,
                                    size_bytes=d.ref.size_bytes)
                        out = copier.copy(src, tconn, d)
                        out.attempts = attempts
                        with lock:
                            outcomes[d.ref.qualified] = out
                        events.emit("table_copied", **out.event_fields())
                        break
                    except Exception as exc:  # noqa: BLE001 - every failure is reported
                        from_source = isinstance(exc, SourceStreamError)
                        cause = exc.cause if isinstance(exc, SourceStreamError) else exc
                        src_lost = _is_broken(src) or (from_source and _looks_lost(cause))
                        tgt_lost = _is_broken(tconn) or (not from_source and _looks_lost(cause))
                        lost = src_lost or tgt_lost
                        side = "source" if src_lost or (from_source and not tgt_lost) else "target"
                        # A source connection whose COPY failed is in an unknown protocol
                        # state: replace it (it re-imports the run's snapshot).
                        if src is not None and (src_lost or from_source):
                            _close_quietly(src)
                            src = None
                        if tconn is not None and tgt_lost:
                            _close_quietly(tconn)
                            tconn = None
                        message = explain(d.ref.qualified, cause, side)
                        if lost:
                            message = (f"{d.ref.qualified}: the connection to the {side} was lost "
                                       f"({pg_message(cause)})")
                        if lost and attempts <= options.retries:
                            events.warn(f"{message}; retrying ({attempts}/{options.retries})",
                                        d.ref.qualified)
                            time.sleep(min(30.0, 2.0 ** attempts))
                            continue
                        if tconn is None:
                            try:
                                tconn = dsnlib.connect(options.target_dsn, "target", app,
                                                       settings=TARGET_SETTINGS)
                            except NightcopyError:
                                tconn = None
                        with lock:
                            fail(d, message, tconn, attempts)
                        break
        finally:
            for c in (src, tconn):
                if c is not None and not c.closed:
                    c.close()

    threads = [threading.Thread(target=worker, name=f"nightcopy-worker-{i}", daemon=True)
               for i in range(max(1, min(options.jobs, work.qsize())))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    replaced = None
    if not _alive(tgt):
        # The target restarted during the run: the workers reconnected, so does this session.
        _close_quietly(tgt)
        tgt = replaced = dsnlib.connect(options.target_dsn, "target", app,
                                        settings=TARGET_SETTINGS)
    try:
        return _finish(options, events, tgt, tables, defs, outcomes, settings, started_at,
                       run_started)
    finally:
        if replaced is not None:
            _close_quietly(replaced)


def _finish(options: CopyOptions, events: EventWriter, tgt: connection,
            tables: list[catalog.TableRef], defs: dict[int, catalog.TableDef],
            outcomes: dict[str, TableOutcome], settings: CopySettings, started_at: datetime,
            run_started: float) -> RunResult:
    """Foreign keys, the summary, the ledger's run row and the report."""
    _add_foreign_keys(tgt, defs, settings, events)

    ordered = [outcomes[t.qualified] for t in tables if t.qualified in outcomes]
    failed = [o for o in ordered if o.status == "failed"]
    summary = {
        "run_id": options.run_id, "group": options.group,
        "status": "failed" if failed else "succeeded",
        "tables": len(ordered), "failed": len(failed),
        "rows": sum(o.rows for o in ordered), "bytes": sum(o.bytes for o in ordered),
        "seconds": round(time.monotonic() - run_started, 3),
        "failed_tables": [o.table for o in failed],
    }
    ledger.finish_run(tgt, options.run_id, options.group, summary)
    if options.report_writer is not None:
        report = dict(summary, started_at=started_at.isoformat(),
                      finished_at=datetime.now(UTC).isoformat(),
                      results=[{"table": o.table, "status": o.status, "rows": o.rows,
                                "bytes": o.bytes, "seconds": round(o.seconds, 3),
                                **({"error": o.error} if o.error else {})} for o in ordered])
        try:
            where = write_report(options.report_writer, options.run_id, options.group, report)
            summary["report"] = where
        except NightcopyError as exc:
            summary["status"] = "failed"
            summary["report_error"] = str(exc)
            events.say(f"nightcopy: error: {exc}")
    events.emit("run_summary", **{k: v for k, v in summary.items()
                                  if k not in ("run_id", "group")})
    return RunResult(summary, ordered)


def _add_foreign_keys(tgt: connection, defs: dict[int, catalog.TableDef],
                      settings: CopySettings, events: EventWriter) -> None:
    """Foreign keys between tables of this invocation: NOT VALID first, then VALIDATE, so
    readers never wait on the validation scan.

    Runs for every pair on every invocation, also when all tables were skipped as already
    copied: a run killed during this step finds missing or unvalidated keys and finishes them.
    """
    by_oid = {d.ref.oid: d for d in defs.values()}
    ms = max(1, int(settings.lock_timeout * 1000))
    for d in defs.values():
        for k in d.constraints:
            if k.kind != "f":
                continue
            child = d.ref.qualified
            if k.ref_table_oid not in by_oid:
                events.warn(f"{child}: foreign key {k.name} references a table outside this "
                            "copy and was skipped", child)
                continue
            name = catalog.quote_ident(k.name)
            validate = k.validated
            with tgt.cursor() as cur:
                try:
                    cur.execute("SELECT convalidated FROM pg_catalog.pg_constraint WHERE "
                                "conname = %s AND conrelid = pg_catalog.to_regclass(%s)",
                                (k.name, child))
                    row = cur.fetchone()
                    tgt.commit()
                    if row is None:
                        not_valid = " NOT VALID" if k.validated else ""
                        # Partitioned referencing tables refuse NOT VALID before PostgreSQL 18.
                        if d.partkey and tgt.server_version < 180000:
                            not_valid, validate = "", False
                        _with_lock_retry(tgt, settings, ms, f"ALTER TABLE {child} ADD "
                                         f"CONSTRAINT {name} {k.definition}{not_valid}")
                    elif row[0]:
                        continue  # present and valid
                except psycopg2.Error as exc:
                    tgt.rollback()
                    events.warn(f"{child}: could not add foreign key {k.name}: {pg_message(exc)}",
                                child)
                    continue
                if not validate:
                    continue
                try:
                    # SHARE UPDATE EXCLUSIVE: readers and writers go on during the scan.
                    cur.execute(f"ALTER TABLE {child} VALIDATE CONSTRAINT {name}")
                    tgt.commit()
                except psycopg2.Error as exc:
                    tgt.rollback()
                    events.warn(f"{child}: foreign key {k.name} left NOT VALID: "
                                f"{pg_message(exc)}", child)


def _with_lock_retry(conn: connection, settings: CopySettings, ms: int, statement: str) -> None:
    """One statement in its own transaction with a short lock_timeout, retried with backoff."""
    for attempt in Retrying(stop=stop_after_attempt(settings.lock_attempts),
                            wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
                            retry=retry_if_exception_type(psycopg2.errors.LockNotAvailable
                                                          | psycopg2.errors.DeadlockDetected),
                            reraise=True):
        with attempt:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{ms}ms'")
                    cur.execute(statement)
                conn.commit()
            except psycopg2.Error:
                conn.rollback()
                raise


__all__ = ["CopyOptions", "RunResult", "copy_tables", "new_run_id"]
