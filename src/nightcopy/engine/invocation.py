"""The copy engine as a library: `copy_tables(options, events)` copies a table list.

Order of work: validate everything (table list, connections, source == target, the tables and
their definitions) before writing anything to the target; then the ledger, the prerequisites
(schemas, extensions, collations, types, sequences), the tables `jobs` at a time (table_workers), and last the
foreign keys between the copied tables (foreign_keys).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
from psycopg2.extensions import connection

from nightcopy.engine import column_masks, glob_drift, ledger, target_ddl
from nightcopy.engine.connection import TARGET_SETTINGS, close_quietly, connect, is_alive, parse
from nightcopy.engine.copy_stream import limit_heap_retention
from nightcopy.engine.dry_run import plan_invocation
from nightcopy.engine.events import EventWriter
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.foreign_keys import add_foreign_keys
from nightcopy.engine.freshness import checks_of as freshness_checks
from nightcopy.engine.invocation_report import (
    REPORT_SCHEMA_VERSION,
    ReportWriter,
    report_retryable,
    write_report,
)
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.run_id import new_run_id
from nightcopy.engine.shrink_guard import ShrinkPolicy, parse_allow_shrink, per_table_thresholds
from nightcopy.engine.snapshot import Snapshot
from nightcopy.engine.source_catalog.collations import read_collations
from nightcopy.engine.source_catalog.definitions import load_definitions
from nightcopy.engine.source_catalog.extensions import read_extensions
from nightcopy.engine.source_catalog.functions import read_functions
from nightcopy.engine.source_catalog.listed_tables import resolve_tables
from nightcopy.engine.source_catalog.readable import check_readable
from nightcopy.engine.source_catalog.types import load_types
from nightcopy.engine.swap_units import plan_units
from nightcopy.engine.table_copy import TableCopier, drop_staged_leftovers
from nightcopy.engine.table_guard import TableGuard
from nightcopy.engine.table_job import CopySettings, TableOutcome
from nightcopy.engine.table_locks import check_lock_capacity, lock_tables_for_run
from nightcopy.engine.table_model import TableDef, TableRef, TypeDef
from nightcopy.engine.table_units import form_units, spread_failures
from nightcopy.engine.table_workers import Outcomes, WorkerPool
from nightcopy.engine.tablelist import parse_exclusions, parse_table_entries, parse_table_list
from nightcopy.engine.trust import Trust, parse_trust, refused_tables
from nightcopy.errors import ConfigError, NightcopyError, WorkerInterrupted
from nightcopy.options import (
    ADOPT,
    CANCEL_BLOCKERS_AFTER,
    CREATE_EXTENSIONS,
    JOBS,
    LOCK_ATTEMPTS,
    LOCK_TIMEOUT,
    RETRIES,
    SENSITIVE_COLUMN_PATTERNS,
    SHRINK_GUARD,
    SHRINK_GUARD_MIN_ROWS,
    STRATEGY,
    SWAP_SCOPE,
    TRUST,
    VERIFY,
)
from nightcopy.secrets import register_secret


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
    trust: str | None = TRUST.default  # nightcopy.engine.trust: what expressions may call
    adopt: bool = ADOPT.default  # nightcopy.engine.table_guard: may globs replace unrecorded tables
    create_extensions: bool = CREATE_EXTENSIONS.default  # target_catalog/extensions
    swap_scope: str = SWAP_SCOPE.default  # table | linked | group (nightcopy.engine.swap_units)
    cancel_blockers_after: float | None = CANCEL_BLOCKERS_AFTER.default
    shrink_guard: float | str = SHRINK_GUARD.default  # percent, or "off" (engine/shrink_guard)
    shrink_guard_min_rows: int = SHRINK_GUARD_MIN_ROWS.default
    allow_shrink: str | None = None  # tables the guard lets shrink tonight (table-list grammar)
    mask_key: str | None = None  # the key of "hmac" masks (engine/column_masks): a secret
    sensitive_column_patterns: str = SENSITIVE_COLUMN_PATTERNS.default
    exclude_table: str | None = None  # tables left out of the list (tablelist grammar; -T)
    schema: str | None = None  # --schema as given (its SCHEMA.* are already in `tables`)
    # libpq | rds-iam: applied by the command line (engine/connection.use_password_source)
    source_auth: str = "libpq"
    target_auth: str = "libpq"
    dry_run: bool = False  # say what would be copied (engine/dry_run), write nothing anywhere

    def shrink_policy(self) -> ShrinkPolicy:
        """The shrink guard's policy (ConfigError for a malformed allow_shrink)."""
        return ShrinkPolicy(self.shrink_guard, self.shrink_guard_min_rows,
                            parse_allow_shrink(self.allow_shrink),
                            per_table_thresholds(parse_table_entries(self.tables)))


@dataclass
class RunResult:
    summary: dict
    outcomes: list[TableOutcome]

    @property
    def ok(self) -> bool:
        return self.summary["status"] == "succeeded"


def _same_database(snapshot: Snapshot, tgt: connection) -> bool:
    with tgt.cursor() as cur:
        found = fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE "
                            "application_name = %s AND datname = pg_catalog.current_database()",
                            (snapshot.application_name,)) > 0
    tgt.commit()
    return found


def copy_tables(options: CopyOptions, events: EventWriter) -> RunResult:
    specs = parse_table_list(options.tables)
    exclude = parse_exclusions(options.exclude_table)
    trust = parse_trust(options.trust)
    options.shrink_policy()  # its input checked before anything is connected to
    register_secret(options.mask_key)
    limit_heap_retention()
    parse(options.source_dsn, "source")
    parse(options.target_dsn, "target")
    app = f"nightcopy:{options.run_id}"[:63]
    marker = f"nightcopy-snapshot-{uuid.uuid4().hex[:20]}"
    snapshot = Snapshot(options.source_dsn, marker)
    tgt: connection | None = None
    try:
        tgt = connect(options.target_dsn, "target", app, settings=TARGET_SETTINGS)
        if _same_database(snapshot, tgt):
            raise ConfigError("the source and the target are the same database: copying onto "
                              "itself would destroy the tables; point --target at the "
                              "reporting database")
        tables = resolve_tables(snapshot.conn, specs, exclude)
        check_lock_capacity(tgt, len(tables))
        defs = load_definitions(snapshot.conn, tables)
        check_readable(snapshot.conn, defs)
        # Excluded and masked columns: checked (ConfigError) and applied to the definitions
        # before anything is written; the key reaches the workers' sessions at connect time.
        masks = column_masks.masks_of(parse_table_entries(options.tables))
        masked_refused = column_masks.resolve(snapshot.conn, masks, defs, options.mask_key)
        if masks.uses_hmac and options.mask_key:
            snapshot.worker_startup_settings.update(column_masks.key_settings(options.mask_key))
        # Before anything is written: a table whose expressions call what the target must not
        # run as the worker fails here, and none of its prerequisites (types) is created.
        refused = {**refused_tables(tgt, defs, trust), **masked_refused}
        # The shared objects the definitions need: the user functions first (their argument
        # types join the table's), then the types, extensions and collations (pg_depend).
        wanted = {oid: d for oid, d in defs.items() if oid not in refused}
        read_functions(snapshot.conn, wanted)
        types = load_types(snapshot.conn, {o for d in wanted.values() for o in d.type_oids})
        type_oids_of = {oid: target_ddl.type_closure(d.type_oids, types)
                        for oid, d in wanted.items()}
        read_extensions(snapshot.conn, wanted, type_oids_of)
        read_collations(snapshot.conn, wanted, type_oids_of)
        guard = TableGuard(tuple(specs), options.adopt, trust)
        if options.dry_run:
            summary = plan_invocation(
                events=events, snapshot=snapshot, tgt=tgt, tables=tables, defs=defs,
                refused=refused, guard=guard, run_id=options.run_id, jobs=options.jobs,
                strategy=options.strategy, swap_scope=options.swap_scope)
            return RunResult(summary, [])
        started = time.monotonic()
        try:
            return _run(options, events, snapshot, tgt, tables, defs, types, app, refused,
                        trust, guard, masks)
        except KeyboardInterrupt:
            tgt = _record_interrupt(options, events, tgt, app, tables, started)
            raise WorkerInterrupted(
                f"interrupted: run {options.run_id} stopped before every table was copied; "
                "the tables not copied are as they were on the target; rerun with --run-id "
                f"{options.run_id} to copy only those") from None
    finally:
        snapshot.close()
        if tgt is not None:
            tgt.close()


def _run(options: CopyOptions, events: EventWriter, snapshot: Snapshot, tgt: connection,
         tables: list[TableRef], defs: dict[int, TableDef], types: list[TypeDef], app: str,
         refused: dict[int, str], trust: Trust, guard: TableGuard,
         masks: column_masks.MaskedTables) -> RunResult:
    run_started = time.monotonic()
    started_at = datetime.now(UTC)
    _start_ledger_run(options, tgt, len(tables))
    done = ledger.finished_tables(tgt, options.run_id)
    events.emit("run_started", tables=len(tables), jobs=options.jobs,
                strategy=options.strategy, verify=options.verify,
                snapshot=snapshot.id, resumed=len(done & {t.qualified for t in tables}))
    if snapshot.standby is not None and (warning := snapshot.standby.conflict_warning()):
        events.warn(warning)
    settings = CopySettings(run_id=options.run_id, group=options.group,
                            strategy=options.strategy, verify=options.verify,
                            lock_timeout=options.lock_timeout,
                            lock_attempts=options.lock_attempts, swap_scope=options.swap_scope,
                            cancel_blockers_after=options.cancel_blockers_after, trust=trust,
                            shrink=options.shrink_policy(),
                            freshness=freshness_checks(parse_table_entries(options.tables)),
                            masks=masks, sensitive_column_patterns=column_masks.sensitive_patterns(
                                options.sensitive_column_patterns))
    glob_drift.report(tgt, events, parse_table_list(options.tables),
                      [t.qualified for t in tables], options.group, options.run_id,
                      settings.schema_changes, parse_exclusions(options.exclude_table))
    with tgt.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_catalog.pg_roles")
        roles = {r[0] for r in cur.fetchall()}
    tgt.commit()
    copier = TableCopier(settings, events, {t.qualified for t in tables}, roles, guard)
    outcomes = Outcomes(events, copier)
    for t in tables:
        if t.qualified in done:
            outcomes.skipped(t.qualified, "already copied by this run (resumed)")
    # Units: an inheritance hierarchy listed whole is copied as one (loaded in one
    # transaction, one swap unit), and fails whole when one of its tables cannot be copied.
    hierarchies = form_units([defs[t.oid] for t in tables if t.qualified not in done],
                             events.warn, tgt.server_version)
    refused = spread_failures(hierarchies, refused)
    for t in tables:
        if t.qualified not in done and t.oid in refused:
            outcomes.failed(defs[t.oid], refused[t.oid], tgt)
    hierarchies = [u for u in hierarchies if u.ref.oid not in refused]
    todo = [d for u in hierarchies for d in u.unit]  # a hierarchy's tables: parents first
    # The run lock of every table, held by this session until the invocation ends: the staged
    # tables outlive their load's transaction (docs/swap.md).
    by_name = {d.ref.qualified: d for d in todo}
    locked_elsewhere = lock_tables_for_run(tgt, list(by_name))
    held_elsewhere = spread_failures(hierarchies, {by_name[name].ref.oid: message
                                                   for name, message in locked_elsewhere.items()})
    for d in todo:
        if d.ref.oid in held_elsewhere:
            outcomes.failed(d, held_elsewhere[d.ref.oid], tgt)
    todo = [d for d in todo if d.ref.oid not in held_elsewhere]
    drop_staged_leftovers(tgt, {d.ref.qualified for d in todo})
    for d in todo:
        for left_out in d.masked_out:
            events.warn(f"{d.ref.qualified}: {left_out}: not created on the target (it is about "
                        "the clear values; create your own index there if joins need one)",
                        d.ref.qualified)
        if not d.binary:
            events.emit("table_format", table=d.ref.qualified, format="text", reason=d.text_reason)
    prepare_failures = spread_failures(
        hierarchies, _prepare_target(tgt, todo, types, events, options, trust))
    for d in todo:
        if d.ref.oid in prepare_failures:
            outcomes.failed(d, prepare_failures[d.ref.oid], tgt)
    workers = WorkerPool(snapshot, options.target_dsn, app, copier, outcomes, events,
                         options.retries)
    units = plan_units(tgt, [d for d in todo if d.ref.oid not in prepare_failures],
                       options.swap_scope)
    workers.copy_all(units, options.jobs, truncate=options.strategy == "truncate")

    replaced = None
    if not is_alive(tgt):
        # The target restarted during the run: the workers reconnected, so does this session.
        close_quietly(tgt)
        tgt = replaced = connect(options.target_dsn, "target", app, settings=TARGET_SETTINGS)
    try:
        return _finish(options, events, tgt, tables, defs, outcomes.by_table, settings,
                       started_at, run_started, snapshot)
    finally:
        if replaced is not None:
            close_quietly(replaced)


def _record_interrupt(options: CopyOptions, events: EventWriter, tgt: connection, app: str,
                      tables: list[TableRef], started: float) -> connection:
    """Ctrl-C or SIGTERM mid-run: the ledger row says interrupted (with the seconds this worker
    ran), and the last line is a run_summary from the ledger's own record of what was copied.
    Best effort: the target may be what is gone. Returns the session to close."""
    seconds = round(time.monotonic() - started, 3)
    copied: set[str] = set()
    try:
        if not is_alive(tgt):
            close_quietly(tgt)
            tgt = connect(options.target_dsn, "target", app, settings=TARGET_SETTINGS)
        tgt.rollback()
        ledger.mark_interrupted(tgt, options.run_id, {options.group or "": seconds})
        copied = ledger.finished_tables(tgt, options.run_id)
    except (psycopg2.Error, NightcopyError):
        close_quietly(tgt)
    listed = [t.qualified for t in tables]
    left = [q for q in listed if q not in copied]
    events.emit("run_summary", status="failed", tables=len(listed), failed=len(left), rows=0,
                bytes=0, seconds=seconds, failed_tables=left, interrupted=True)
    return tgt


def _start_ledger_run(options: CopyOptions, tgt: connection, table_count: int) -> None:
    try:
        ledger.ensure_ledger(tgt)
    except psycopg2.Error as exc:
        tgt.rollback()
        raise NightcopyError(f"cannot create the run ledger (schema {ledger.LEDGER_SCHEMA}) on "
                             f"the target: {pg_message(exc)}; grant the target role CREATE on "
                             "the database") from None
    ledger.start_run(tgt, options.run_id, options.group,
                     {"jobs": options.jobs, "strategy": options.strategy,
                      "verify": options.verify, "tables": table_count})


def _prepare_target(tgt: connection, todo: list[TableDef], types: list[TypeDef],
                    events: EventWriter, options: CopyOptions, trust: Trust
                    ) -> target_ddl.PrepareFailures:
    """Schemas, extensions, collations, types, functions and sequences the tables need; a
    table whose prerequisites fail is reported failed (the others go on)."""
    try:
        return target_ddl.prepare_target(tgt, todo, types, events.warn,
                                          options.create_extensions, trust, options.run_id)
    except psycopg2.Error as exc:
        tgt.rollback()
        hint = (": grant the target role CREATE on the database (for schemas) and on the "
                "tables' schemas" if getattr(exc, "pgcode", None) == "42501" else "")
        return {d.ref.oid: f"cannot prepare the target for the tables: "
                f"{pg_message(exc)}{hint}" for d in todo}


def _finish(options: CopyOptions, events: EventWriter, tgt: connection,
            tables: list[TableRef], defs: dict[int, TableDef],
            outcomes: dict[str, TableOutcome], settings: CopySettings, started_at: datetime,
            run_started: float, snapshot: Snapshot) -> RunResult:
    """Foreign keys, the summary, the ledger's run row and the report."""
    add_foreign_keys(tgt, defs, settings.lock_policy, events,
                     {d.ref.oid for d in defs.values()
                      if (o := outcomes.get(d.ref.qualified)) is not None and o.status == "failed"})

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
    if snapshot.standby is not None and snapshot.standby.age_seconds is not None:
        summary["snapshot_age_seconds"] = snapshot.standby.age_seconds
    ledger.finish_run(tgt, options.run_id, options.group, summary)
    if options.report_writer is not None:
        report = dict(summary, started_at=started_at.isoformat(),
                      finished_at=datetime.now(UTC).isoformat(),
                      results=[{"table": o.table, "status": o.status, "rows": o.rows,
                                "bytes": o.bytes, "seconds": round(o.seconds, 3),
                                **({"error": o.error} if o.error else {})} for o in ordered],
                      retryable=report_retryable([o.transient for o in failed]),
                      schema_version=REPORT_SCHEMA_VERSION)
        listed = {t.qualified for t in tables}
        drift = [settings.schema_changes[t.qualified] for t in tables
                 if t.qualified in settings.schema_changes]
        # Tables gone from a glob (engine/glob_drift) are not in tonight's list: after it.
        drift += [c for q, c in settings.schema_changes.items() if q not in listed]
        if drift:
            report["schema_changes"] = drift
        stale = [settings.stale_tables[t.qualified] for t in tables
                 if t.qualified in settings.stale_tables]
        if stale:
            report["stale_tables"] = stale
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


__all__ = ["CopyOptions", "RunResult", "copy_tables", "new_run_id"]
