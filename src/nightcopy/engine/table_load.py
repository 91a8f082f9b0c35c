"""The load steps both strategies share: create the staged table, COPY the rows, build keys
and indexes, verify, ANALYZE and set identity sequences. All of them run in the table's one
target transaction (`cur`), reading the source in the run's snapshot (`src`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg2.extensions import connection, cursor

from nightcopy.engine import column_masks, copy_stream, target_ddl, verify
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_all, fetch_value, one_row
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_job import CopySettings, TableOutcome
from nightcopy.engine.table_model import IndexDef, PartitionDef, TableDef
from nightcopy.errors import TableError

# smallint, integer, bigint: the column types a sequence's values are compared with.
INTEGER_TYPES = {21, 23, 20}

# Where a partition's rows go (None: the table itself, or its only part when not partitioned).
TargetOf = Callable[[PartitionDef | None], str]


@dataclass
class TableLoad:
    """One table's load in progress; `out` collects its counts and timings."""
    src: connection
    cur: cursor
    table: TableDef
    out: TableOutcome
    settings: CopySettings
    events: EventWriter
    # An in-place load lifted FORCE ROW LEVEL SECURITY: put back after the verification.
    force_after: bool = field(default=False, init=False)

    def create_staged(self) -> None:
        """The table and its partitions in their staging schemas, checks inline, no indexes.

        No leftover to clear: a staged table only ever exists inside this transaction."""
        self._require_access_method()
        path = target_ddl.self_reference_path(self.table)
        if path is not None:
            self.cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
        for statement in target_ddl.create_table_sql(self.table, self._unsupported_compression()):
            self.cur.execute(statement)
        if path is not None:
            self.cur.execute("SELECT pg_catalog.set_config('search_path', '', true)")

    def copy_rows(self, target_of: TargetOf, freeze: bool) -> None:
        d, out, cur = self.table, self.out, self.cur
        cols = ", ".join(quote_ident(c.name) for c in d.copy_columns)
        fmt = "FORMAT binary" if d.binary else "FORMAT text"
        parts = [(p.qualified, p) for p in d.leaves] if d.partkey else [(d.ref.qualified, None)]
        in_place = target_of(None) != target_ddl.staged(d.ref.schema, d.ref.name)
        re_add = self._lift_not_valid_checks(target_of(None)) if in_place else []
        if in_place:
            self._lift_forced_row_security(target_of(None))
        t0 = time.monotonic()
        if not d.copy_columns:
            # No column to COPY (none at all, or only generated ones): only the row count moves.
            for source_name, part in parts:
                with self.src.cursor() as scur:
                    n = fetch_value(scur, f"SELECT count(*) FROM ONLY {source_name}")
                cur.execute(f"INSERT INTO {target_of(part)} SELECT FROM "
                            "pg_catalog.generate_series(1, %s)", (n,))
                out.rows += n
            out.copy_seconds = time.monotonic() - t0
            self._run(re_add)
            return
        masks = self.settings.masks.of(d)
        for source_name, part in parts:
            # Masks are applied in the source's query: the clear values never leave it.
            select = column_masks.source_relation(f"ONLY {source_name}",
                                                  [c.name for c in d.copy_columns], masks)
            copy_out = (f"COPY ({select}) TO STDOUT WITH ({fmt})" if select else
                        f"COPY {source_name} ({cols}) TO STDOUT WITH ({fmt})")
            copy_in = (f"COPY {target_of(part)} ({cols}) FROM STDIN WITH ({fmt}"
                       f"{', FREEZE' if freeze else ''})")
            base = out.bytes

            def progress(n: int, base: int = base) -> None:
                self.events.emit("table_progress", table=d.ref.qualified, bytes=base + n,
                                 seconds=round(time.monotonic() - t0, 1))

            result = copy_stream.stream(self.src, cur.connection, copy_out, copy_in, progress,
                                        self.settings.progress_every)
            if result.rows_out != result.rows_in:
                raise TableError(f"{d.ref.qualified}: the source sent {result.rows_out} rows but "
                                 f"the target stored {result.rows_in}; the table was left as it was")
            out.rows += result.rows_in
            out.bytes += result.bytes
        out.copy_seconds = time.monotonic() - t0
        self._run(re_add)

    def _lift_not_valid_checks(self, table_name: str) -> list[str]:
        """A NOT VALID check still judges every row inserted, so loading in place would reject
        the source's rows that break it: drop the table's (and its partitions') NOT VALID
        checks for the load and return the statements that add them back as they were, in
        the same transaction (readers never see the table without them). Only on a table the
        worker owns; on another's they stay, and judge the load as before."""
        statements = []
        for rel, name, definition in fetch_all(self.cur, """
            SELECT k.conrelid::pg_catalog.regclass::text, k.conname,
                   pg_catalog.pg_get_constraintdef(k.oid)
              FROM pg_catalog.pg_constraint k
              JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
              -- no rows for a table outside any partition tree: then it is the only one
              LEFT JOIN pg_catalog.pg_partition_tree(%(t)s::pg_catalog.regclass) t
                     ON t.relid = c.oid
             WHERE k.contype = 'c' AND NOT k.convalidated AND k.conislocal
               AND (t.relid IS NOT NULL OR c.oid = %(t)s::pg_catalog.regclass)
               AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
             ORDER BY t.level NULLS FIRST, 1, 2""", {"t": table_name}):
            self.cur.execute(f"ALTER TABLE {rel} DROP CONSTRAINT {quote_ident(name)}")
            statements.append(f"ALTER TABLE {rel} ADD CONSTRAINT {quote_ident(name)} {definition}")
        return statements

    def _run(self, statements: list[str]) -> None:
        for statement in statements:
            self.cur.execute(statement)

    def build_indexes(self, extra: list[IndexDef]) -> None:
        """Keys, exclusion constraints and indexes after the load (one pass each), and
        `extra` indexes (the target's own) on the staged table."""
        t0 = time.monotonic()
        for statement in target_ddl.post_load_sql(self.table):
            self.cur.execute(statement)
        staged_table = target_ddl.staged(self.table.ref.schema, self.table.ref.name)
        for index in extra:
            self.cur.execute(target_ddl.index_sql(index, staged_table))
        self.out.index_seconds = time.monotonic() - t0

    def finish(self, table_name: str) -> None:
        """After the rows are in: verify, ANALYZE, set identity sequences to the source's, warn
        of sequences behind their column, and FORCE row-level security where the source does."""
        self._verify_checksum(table_name)
        t0 = time.monotonic()
        self.cur.execute(f"ANALYZE {table_name}")
        self.out.analyze_seconds = time.monotonic() - t0
        for c in self.table.columns:
            if c.identity and c.identity_seq is not None:
                name = fetch_value(self.cur, "SELECT pg_catalog.pg_get_serial_sequence(%s, %s)",
                                   (table_name, c.name))
                target_ddl.set_sequence_value(self.cur, c.identity_seq, name)
        self._warn_sequences_behind(table_name)
        staged = table_name == target_ddl.staged(self.table.ref.schema, self.table.ref.name)
        if self.force_after or (staged and self.table.force_row_security):
            # Last: forced, the owner itself (the worker) sees no rows without a policy.
            self.cur.execute(f"ALTER TABLE {table_name} FORCE ROW LEVEL SECURITY")

    def _lift_forced_row_security(self, table_name: str) -> None:
        """COPY FROM refuses a table whose row-level security applies to the loading role, as
        FORCE makes it apply to the owner: the worker's own forced table is unforced for the
        load and forced again in finish(), inside the one transaction (readers never see it)."""
        if fetch_value(self.cur, """
            SELECT c.relforcerowsecurity AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                   AND NOT (SELECT r.rolbypassrls FROM pg_catalog.pg_roles r
                             WHERE r.rolname = current_user)
              FROM pg_catalog.pg_class c WHERE c.oid = %s::pg_catalog.regclass""",
                       (table_name,)):
            self.cur.execute(f"ALTER TABLE {table_name} NO FORCE ROW LEVEL SECURITY")
            self.force_after = True

    def _require_access_method(self) -> None:
        d = self.table
        # The table's and its partitions' (each may have its own).
        for what, am in [(d.ref.qualified, d.access_method),
                         *((p.qualified, p.access_method) for p in d.partitions)]:
            if am is not None and fetch_value(self.cur, "SELECT count(*) FROM pg_catalog.pg_am "
                                              "WHERE amname = %s AND amtype = 't'", (am,)) == 0:
                raise TableError(f"{what}: the source stores it with the table access method "
                                 f"{am}, which the target does not have: create it on the "
                                 "target (CREATE EXTENSION or CREATE ACCESS METHOD) first")

    def _unsupported_compression(self) -> frozenset[str]:
        """Columns compressed with a method the target lacks (lz4 needs a server built with it;
        none before PostgreSQL 14): the rows are the same either way, so those columns keep the
        target's default method, with a warning, instead of failing the table."""
        d = self.table
        wanted = {c.compression for c in d.columns if c.compression}
        if not wanted:
            return frozenset()
        have: set[str] = set()
        if self.cur.connection.server_version >= 140000:
            have = set(fetch_value(self.cur, "SELECT enumvals FROM pg_catalog.pg_settings "
                                   "WHERE name = 'default_toast_compression'") or [])
        missing = [c for c in d.columns if c.compression and c.compression not in have]
        if missing:
            self.events.warn(
                f"{d.ref.qualified}: the target server has no "
                f"{' or '.join(sorted({c.compression or '' for c in missing}))} compression: "
                f"column{'s' if len(missing) > 1 else ''} {', '.join(c.name for c in missing)} "
                f"use{'' if len(missing) > 1 else 's'} the target's default compression "
                "(rows are unchanged)", d.ref.qualified)
        return frozenset(c.name for c in missing)

    def _warn_sequences_behind(self, table_name: str) -> None:
        """A sequence behind its column's values is copied as it is (the source's state is what
        the copy promises), with a warning: the next default insert would collide."""
        d = self.table
        for c in d.columns:
            seq = c.identity_seq if c.identity else c.default_seq
            if seq is None or c.type_oid not in INTEGER_TYPES:
                continue
            extreme = fetch_value(self.cur, f"SELECT {'max' if seq.increment > 0 else 'min'}"
                                  f"({quote_ident(c.name)}) FROM {table_name}")
            if target_ddl.sequence_behind(seq, extreme):
                self.events.warn(
                    f"{d.ref.qualified}: sequence {seq.qualified} is behind column {c.name}: "
                    f"its last value is {seq.last_value} but the column holds {extreme}; copied "
                    "as on the source (fix it there with setval)", d.ref.qualified)

    def _verify_checksum(self, table_name: str) -> None:
        if self.settings.verify != "checksum":
            return
        d = self.table
        cols = [c.name for c in d.copy_columns]
        # A partitioned table is read with its partitions; a plain one without inheritance
        # children, exactly as COPY read it (on both sides: a target hierarchy has children).
        relation = d.ref.qualified if d.partkey else f"ONLY {d.ref.qualified}"
        select = column_masks.source_relation(relation, cols, self.settings.masks.of(d))
        if select is not None:  # the masked values, as the target holds them
            source = verify.checksum(self.src, f"({select}) AS masked", cols)
        else:
            source = verify.checksum(self.src, d.ref.qualified, cols, only=not d.partkey)
        self.cur.execute(verify.checksum_sql(table_name, cols, only=not d.partkey))
        count, total = one_row(self.cur)
        if (int(count), str(total)) != source:
            raise TableError(f"{d.ref.qualified}: checksum mismatch between source and target "
                             f"({source[0]} vs {count} rows); the old table was kept")
