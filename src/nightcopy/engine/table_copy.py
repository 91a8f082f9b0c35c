"""How one table is copied: one target transaction per table.

swap (default): create the table in its staging schema, COPY FREEZE into it, build keys and
indexes, ANALYZE, then swap it in under a SAVEPOINT with a short lock_timeout (retried with
backoff): drop the old table (after its dependent views, which are re-created) and move the new
one in with ALTER TABLE ... SET SCHEMA, keeping the old table's grants and owner. The ledger row
is written in the same transaction, so a table is recorded as copied exactly when it is.

truncate: TRUNCATE + COPY FREEZE + index maintenance in one transaction on the existing table;
keeps its identity and every dependent object, but readers wait for the whole load.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection, cursor
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from nightcopy.engine import connection as dsnlib
from nightcopy.engine import copy_stream as data
from nightcopy.engine import target_ddl as schema
from nightcopy.engine import target_objects as target
from nightcopy.engine import verify
from nightcopy.engine.catalog import TableDef, quote_ident
from nightcopy.engine.events import EventWriter
from nightcopy.engine.ledger import RECORD_TABLE_SQL
from nightcopy.errors import TableError
from nightcopy.options import LOCK_ATTEMPTS, LOCK_TIMEOUT, STRATEGY, VERIFY
from nightcopy.secrets import scrub


@dataclass
class CopySettings:
    run_id: str
    group: str | None
    strategy: str = STRATEGY.default  # swap | truncate (defaults: nightcopy.options)
    verify: str = VERIFY.default  # count | checksum
    lock_timeout: float = LOCK_TIMEOUT.default  # seconds one lock wait may block readers behind it
    lock_attempts: int = LOCK_ATTEMPTS.default
    progress_every: float = 30.0


@dataclass
class TableOutcome:
    table: str
    status: str  # copied | failed | skipped
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    index_seconds: float = 0.0
    analyze_seconds: float = 0.0
    lock_wait_seconds: float = 0.0
    format: str = "binary"
    attempts: int = 1
    error: str | None = None
    started_at: float = field(default_factory=time.time)

    def event_fields(self) -> dict:
        out = {"table": self.table, "rows": self.rows, "bytes": self.bytes,
               "seconds": round(self.seconds, 3), "copy_seconds": round(self.copy_seconds, 3),
               "index_seconds": round(self.index_seconds, 3),
               "analyze_seconds": round(self.analyze_seconds, 3),
               "lock_wait_seconds": round(self.lock_wait_seconds, 3), "format": self.format,
               "attempts": self.attempts}
        if self.error:
            out["error"] = self.error
        return out


def blocked_message(table: str, blockers: list[str]) -> str:
    """Why a swap cannot replace the table, with the fix that fits the obstacle."""
    fixes = []
    if any(b.startswith("foreign key") for b in blockers):
        fixes.append("copy the referencing tables in the same group, or drop those foreign "
                     "keys on the target")
    if any(not b.startswith("foreign key") for b in blockers):
        fixes.append("drop or change those objects, or use --strategy truncate (keeps the table "
                     "and everything that depends on it)")
    return f"cannot replace {table} on the target: {'; '.join(blockers)}. {'; '.join(fixes)}"


class _LockBusy(Exception):
    pass


def pg_message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        text = diag.message_primary
        if diag.message_detail:
            text += f" ({diag.message_detail.splitlines()[0]})"
    else:
        text = (str(exc).strip().splitlines() or ["unknown error"])[0]
    return scrub(text)


def _explain(table: str, exc: BaseException, side: str = "target") -> str:
    """A one-line reason naming the problem and, where known, the fix."""
    if isinstance(exc, TableError):
        return str(exc)
    code = getattr(exc, "pgcode", None)
    message = pg_message(exc)
    if side == "source":
        source_fixes = {
            "42501": "the source role lacks SELECT on it (or row-level security hides rows "
                     "from it): GRANT SELECT, or use a role with BYPASSRLS",
            "57014": "a statement was cancelled on the source (statement_timeout?)",
        }
        hint = source_fixes.get(code or "")
        return f"{table}: reading the source failed: {message}" + (f"; {hint}" if hint else "")
    fixes = {
        "42883": "the target lacks a function the definition uses: create it there first "
                 "(nightcopy copies tables, not functions)",
        "42704": "the target lacks an object the definition uses (an extension's type or "
                 "operator class?): install it on the target",
        "42501": "the target role lacks a privilege: grant it CREATE on the schema/database "
                 "and ownership of the replaced tables",
        "53100": "the target ran out of disk space",
        "57014": "a statement was cancelled on the target (statement_timeout?)",
        "2BP01": "other objects on the target depend on the table: drop them, or use "
                 "--strategy truncate",
        "42P07": "an object with the same name already exists on the target",
    }
    hint = fixes.get(code or "")
    return f"{table}: {message}" + (f"; {hint}" if hint else "")


class TableCopier:
    def __init__(self, settings: CopySettings, events: EventWriter, listed: set[str],
                 target_roles: set[str]):
        self.settings = settings
        self.events = events
        self.listed = listed
        self.target_roles = target_roles

    # ------------------------------------------------------------------ entry point
    def copy(self, src: connection, tgt: connection, d: TableDef) -> TableOutcome:
        out = TableOutcome(d.ref.qualified, "copied", format="binary" if d.binary else "text")
        started = time.monotonic()
        cur = tgt.cursor()
        try:
            dsnlib.apply_settings(cur, tgt.nightcopy_settings, local=True)
            self._lock_table_for_run(cur, d)
            old = target.inspect(cur, d.ref.schema, d.ref.name, self.listed)
            if old is not None and old.kind not in ("r", "p"):
                raise TableError(
                    f"{d.ref.qualified} on the target is {target.KIND_NAMES.get(old.kind, 'not a table')}"
                    ", not a table; drop or rename it there, or remove the table from the list")
            if self.settings.strategy == "truncate" and old is not None:
                self._truncate_and_load(src, cur, d, old, out)
            else:
                self._build_and_swap(src, cur, d, old, out)
            out.seconds = time.monotonic() - started
            self._record(cur, out)
            tgt.commit()
        except BaseException:
            out.seconds = time.monotonic() - started
            # psycopg2.Error: the connection is gone and the server rolls back on its own.
            with contextlib.suppress(psycopg2.Error):
                tgt.rollback()
            raise
        finally:
            if not cur.closed and not tgt.closed:
                cur.close()
        return out

    # ------------------------------------------------------------------ locking
    def _lock_table_for_run(self, cur: cursor, d: TableDef) -> None:
        """Two runs must not copy the same table at once: a transaction advisory lock."""
        cur.execute("SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('nightcopy'),"
                    " pg_catalog.hashtext(%s))", (d.ref.qualified,))
        if cur.fetchone()[0]:
            return
        cur.execute("""
            SELECT a.pid, a.application_name FROM pg_catalog.pg_locks l
              JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = pg_catalog.hashtext('nightcopy')::oid
               AND l.objid = pg_catalog.hashtext(%s)::oid
               AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                  WHERE datname = pg_catalog.current_database())""",
                    (d.ref.qualified,))
        row = cur.fetchone()
        holder = f"{row[1] or 'another session'} (pid {row[0]})" if row else "another run"
        raise TableError(f"{d.ref.qualified} is being copied right now by {holder}; "
                         "two runs never copy the same table at once: wait for it to finish")

    def _with_lock_retries(self, cur: cursor, body, out: TableOutcome, what: str) -> None:
        """Run body() under a savepoint with a short lock_timeout, retrying with backoff.

        Each wait is bounded by lock_timeout, so reporting queries that queue behind our lock
        request are never blocked for longer than that."""
        ms = max(1, int(self.settings.lock_timeout * 1000))

        def attempt() -> None:
            cur.execute("SAVEPOINT nightcopy_lock")
            cur.execute(f"SET LOCAL lock_timeout = '{ms}ms'")
            t0 = time.monotonic()
            try:
                body()
            except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
                out.lock_wait_seconds += time.monotonic() - t0
                cur.execute("ROLLBACK TO SAVEPOINT nightcopy_lock")
                raise _LockBusy() from None
            cur.execute("SET LOCAL lock_timeout = 0")
            cur.execute("RELEASE SAVEPOINT nightcopy_lock")

        try:
            for attempt_ctx in Retrying(
                    stop=stop_after_attempt(self.settings.lock_attempts),
                    wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
                    retry=retry_if_exception_type(_LockBusy), reraise=False):
                with attempt_ctx:
                    attempt()
        except RetryError:
            raise TableError(
                f"{out.table}: could not {what} within {self.settings.lock_attempts} tries of "
                f"{self.settings.lock_timeout:g}s: other sessions on the target hold locks on "
                "it (long queries? see pg_locks); retry later or raise --lock-timeout") from None

    # ------------------------------------------------------------------ data
    def _copy_rows(self, src: connection, cur: cursor, d: TableDef, target_of, out: TableOutcome,
                   freeze: bool) -> None:
        cols = ", ".join(quote_ident(c.name) for c in d.copy_columns)
        fmt = "FORMAT binary" if d.binary else "FORMAT text"
        parts = [(p.qualified, p) for p in d.leaves] if d.partkey else [(d.ref.qualified, None)]
        t0 = time.monotonic()
        if not d.copy_columns:
            # No column to COPY (none at all, or only generated ones): only the row count moves.
            for source_name, part in parts:
                with src.cursor() as scur:
                    scur.execute(f"SELECT count(*) FROM ONLY {source_name}")
                    n = scur.fetchone()[0]
                cur.execute(f"INSERT INTO {target_of(part)} SELECT FROM "
                            "pg_catalog.generate_series(1, %s)", (n,))
                out.rows += n
            out.copy_seconds = time.monotonic() - t0
            return
        for source_name, part in parts:
            dest = target_of(part)
            copy_out = f"COPY {source_name} ({cols}) TO STDOUT WITH ({fmt})"
            copy_in = (f"COPY {dest} ({cols}) FROM STDIN WITH ({fmt}"
                       f"{', FREEZE' if freeze else ''})")
            base = out.bytes

            def progress(n: int, base: int = base) -> None:
                self.events.emit("table_progress", table=d.ref.qualified, bytes=base + n,
                                 seconds=round(time.monotonic() - t0, 1))

            result = data.stream(src, cur.connection, copy_out, copy_in, progress,
                                 self.settings.progress_every)
            if result.rows_out != result.rows_in:
                raise TableError(f"{d.ref.qualified}: the source sent {result.rows_out} rows but "
                                 f"the target stored {result.rows_in}; the table was left as it was")
            out.rows += result.rows_in
            out.bytes += result.bytes
        out.copy_seconds = time.monotonic() - t0

    def _verify_checksum(self, src: connection, cur: cursor, d: TableDef, dest: str) -> None:
        if self.settings.verify != "checksum":
            return
        cols = [c.name for c in d.copy_columns]
        # A partitioned table is read with its partitions; a plain one without inheritance
        # children, exactly as COPY read it.
        source = verify.checksum(src, d.ref.qualified, cols, only=not d.partkey)
        cur.execute(verify.checksum_sql(dest, cols))
        count, total = cur.fetchone()
        if (int(count), str(total)) != source:
            raise TableError(f"{d.ref.qualified}: checksum mismatch between source and target "
                             f"({source[0]} vs {count} rows); the old table was kept")

    def _finish_load(self, src: connection, cur: cursor, d: TableDef, table: str,
                     out: TableOutcome) -> None:
        """After the rows are in: verify, ANALYZE, and set identity sequences to the source's."""
        self._verify_checksum(src, cur, d, table)
        t0 = time.monotonic()
        cur.execute(f"ANALYZE {table}")
        out.analyze_seconds = time.monotonic() - t0
        for c in d.columns:
            if c.identity and c.identity_seq is not None:
                seq = c.identity_seq
                value = (f"{seq.last_value}, true" if seq.last_value is not None
                         else f"{seq.start}, false")
                cur.execute("SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence(%s, %s), "
                            f"{value})", (table, c.name))

    # ------------------------------------------------------------------ swap strategy
    def _build_and_swap(self, src: connection, cur: cursor, d: TableDef,
                        old: target.TargetTable | None, out: TableOutcome) -> None:
        if old is not None and old.blockers:
            raise TableError(blocked_message(d.ref.qualified, old.blockers))
        stage = schema.stage_schema(d.ref.schema)
        staged_table = schema.staged(d.ref.schema, d.ref.name)
        # No leftover to clear: a staged table only ever exists inside this transaction.
        for statement in schema.create_table_sql(d):
            cur.execute(statement)
        self._copy_rows(src, cur, d,
                        lambda part: staged_table if part is None
                        else schema.staged(part.schema, part.name), out, freeze=True)
        t0 = time.monotonic()
        for statement in schema.post_load_sql(d):
            cur.execute(statement)
        if old is not None:
            source_names = {i.name for i in d.indexes} | {k.name for k in d.constraints}
            for name, (unique, body) in old.indexes.items():
                if name not in source_names:  # target-only index: keep it
                    cur.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX {quote_ident(name)}"
                                f" ON {staged_table} USING {body}")
        out.index_seconds = time.monotonic() - t0
        self._finish_load(src, cur, d, staged_table, out)

        def swap() -> None:
            current = None
            if old is not None:
                t0 = time.monotonic()
                self._lock_in_order(cur, d.ref.qualified, old)
                out.lock_wait_seconds += time.monotonic() - t0
                # Look again under the lock: views or grants may have changed during the load.
                current = target.inspect(cur, d.ref.schema, d.ref.name, self.listed)
                if current is not None and current.blockers:
                    raise TableError(blocked_message(d.ref.qualified, current.blockers))
            self._swap_in(cur, d, current, stage)

        self._with_lock_retries(cur, swap, out, "take the lock for the swap")

    @staticmethod
    def _lock_in_order(cur: cursor, table: str, old: target.TargetTable,
                       referenced: bool = True) -> None:
        """Lock the table and the tables its swap touches in one global (name) order.

        Dropping the old table also locks the tables its foreign keys reference, and dropping
        a listed child's foreign key locks the child; taking all of them in the same order in
        every worker keeps two swaps from deadlocking. (Dropping a foreign key's triggers
        takes ACCESS EXCLUSIVE on the referenced table too, for the few milliseconds until
        the swap commits.)"""
        parents = old.referenced_tables if referenced else []
        for name in sorted({table, *(c for c, _ in old.incoming_fks), *parents}):
            cur.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")

    def _swap_in(self, cur: cursor, d: TableDef, old: target.TargetTable | None, stage: str) -> None:
        literal = lambda s: cur.mogrify("%s", (s,)).decode()  # noqa: E731
        q = d.ref.qualified
        keep_sequences = {s.qualified for s in d.sequences}
        if old is not None:
            for child, conname in old.incoming_fks:
                # Re-added (NOT VALID, then validated) after all tables are in.
                cur.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(conname)}")
            for seq in old.owned_sequences:
                if seq in keep_sequences:
                    cur.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
            for view in reversed(old.views):
                cur.execute(f"DROP VIEW {view.qualified}")
            cur.execute(f"DROP TABLE {q}")
            for lost in old.lost:
                self.events.warn(f"{q}: the target's {lost} on the old table was not carried "
                                 "over by the swap", table=q)
        cur.execute(f"ALTER TABLE {schema.qname(stage, d.ref.name)} SET SCHEMA "
                    f"{quote_ident(d.ref.schema)}")
        for p in d.partitions:  # SET SCHEMA moves a table's indexes, not its partitions
            cur.execute(f"ALTER TABLE {schema.staged(p.schema, p.name)} SET SCHEMA "
                        f"{quote_ident(p.schema)}")
        for statement in schema.comments_sql(d, lambda s: s, literal):
            cur.execute(statement)
        if old is not None:
            grants, skipped = schema.grants_sql(q, old.acl, old.column_acl, self.target_roles)
        else:
            col_acl = [(c.name, g, p) for c in d.columns for g, p in c.acl]
            grants, skipped = schema.grants_sql(q, d.acl, col_acl, self.target_roles)
            if skipped:
                self.events.warn(f"{q}: source grants to roles missing on the target were "
                                 f"skipped: {', '.join(skipped)}", table=q)
        for statement in grants:
            cur.execute(statement)
        for s in d.sequences:
            if s.owner_table_oid == d.ref.oid and s.owner_column:
                cur.execute(f"ALTER SEQUENCE {s.qualified} OWNED BY {q}.{quote_ident(s.owner_column)}")
            cur.execute(schema.sequence_value_sql(s, s.qualified))
        if old is not None:
            for head, tail in old.carry_over:
                # Policies, RLS flags and extended statistics the target had on the old table.
                cur.execute(head if tail is None else head + q + tail)
            for publication in old.publications:
                self._try_or_warn(cur, f"ALTER PUBLICATION {publication} ADD TABLE {q}",
                                  f"{q}: could not add the new table back to publication "
                                  f"{publication} (the worker's role does not own it)", q)
            self._restore_owner(cur, f"TABLE {q}", old.owner, q)
            for view in old.views:
                options = f" WITH ({', '.join(view.options)})" if view.options else ""
                try:
                    cur.execute(f"CREATE VIEW {view.qualified}{options} AS {view.definition}")
                except psycopg2.Error as exc:
                    if isinstance(exc, psycopg2.errors.LockNotAvailable | psycopg2.errors.DeadlockDetected):
                        raise
                    raise TableError(
                        f"{q}: the target's view {view.qualified} cannot be re-created on the new "
                        f"table ({pg_message(exc)}); change or drop the view, or use --strategy "
                        "truncate") from None
                self._restore_owner(cur, f"VIEW {view.qualified}", view.owner, q)
                for statement in schema.grants_sql(view.qualified, view.acl, [],
                                                   self.target_roles)[0]:
                    cur.execute(statement)
                if view.comment is not None:
                    cur.execute(f"COMMENT ON VIEW {view.qualified} IS {literal(view.comment)}")
                for column, comment in view.column_comments:
                    cur.execute(f"COMMENT ON COLUMN {view.qualified}.{quote_ident(column)} "
                                f"IS {literal(comment)}")

    def _restore_owner(self, cur: cursor, what: str, owner: str, table: str) -> None:
        cur.execute("SELECT current_user")
        if cur.fetchone()[0] == owner:
            return
        self._try_or_warn(cur, f"ALTER {what} OWNER TO {quote_ident(owner)}",
                          f"{what} is now owned by the worker's role: it may not set the owner "
                          f"back to {owner} (grant it membership in {owner})", table)

    def _try_or_warn(self, cur: cursor, statement: str, warning: str, table: str) -> None:
        """A step the worker's role may lack the privilege for: warn instead of failing."""
        cur.execute("SAVEPOINT nightcopy_optional")
        try:
            cur.execute(statement)
            cur.execute("RELEASE SAVEPOINT nightcopy_optional")
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute("ROLLBACK TO SAVEPOINT nightcopy_optional")
            self.events.warn(warning, table=table)

    # ------------------------------------------------------------------ truncate strategy
    def _truncate_and_load(self, src: connection, cur: cursor, d: TableDef,
                           old: target.TargetTable, out: TableOutcome) -> None:
        q = d.ref.qualified
        wanted = [(c.name, c.type_sql) for c in d.copy_columns]
        if old.columns != wanted:
            raise TableError(f"{q}: the target table's columns differ from the source's, which "
                             "--strategy truncate cannot fix; use --strategy swap")
        if (old.kind == "p") != bool(d.partkey):
            raise TableError(f"{q}: the table is partitioned on one side only; use --strategy "
                             "swap")
        if d.partkey and sorted(p.qualified for p in d.leaves) != old.leaves:
            raise TableError(f"{q}: the target's partitions differ from the source's; use "
                             "--strategy swap")
        fk_blockers = [b for b in old.blockers if b.startswith("foreign key")]
        if fk_blockers:
            raise TableError(f"cannot truncate {q} on the target: {'; '.join(fk_blockers)}; copy "
                             "the referencing table in the same group, or drop that foreign key "
                             "on the target")

        def lock() -> None:
            t0 = time.monotonic()
            # TRUNCATE keeps the table and its own foreign keys: the parents stay unlocked.
            self._lock_in_order(cur, q, old, referenced=False)
            out.lock_wait_seconds += time.monotonic() - t0
            for child, conname in old.incoming_fks:
                cur.execute(f"ALTER TABLE {child} DROP CONSTRAINT {quote_ident(conname)}")

        self._with_lock_retries(cur, lock, out, "lock the table for the truncate")
        cur.execute(f"TRUNCATE {'' if d.partkey else 'ONLY '}{q}")
        self._copy_rows(src, cur, d, lambda part: q if part is None else part.qualified, out,
                        freeze=True)
        self._finish_load(src, cur, d, q, out)
        for s in d.sequences:
            cur.execute(schema.sequence_value_sql(s, s.qualified))

    # ------------------------------------------------------------------ ledger
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


def explain(table: str, exc: BaseException, side: str = "target") -> str:
    return _explain(table, exc, side)
