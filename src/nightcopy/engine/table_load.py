"""The load steps both strategies share: create the staged table, COPY the rows, build keys
and indexes, verify, ANALYZE and set identity sequences. All of them run in the table's one
target transaction (`cur`), reading the source in the run's snapshot (`src`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2.extensions import connection, cursor

from nightcopy.engine import copy_stream, target_ddl, verify
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_value, one_row
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_job import CopySettings, TableOutcome
from nightcopy.engine.table_model import IndexDef, PartitionDef, TableDef
from nightcopy.errors import TableError

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

    def create_staged(self) -> None:
        """The table and its partitions in their staging schemas, checks inline, no indexes.

        No leftover to clear: a staged table only ever exists inside this transaction."""
        for statement in target_ddl.create_table_sql(self.table):
            self.cur.execute(statement)

    def copy_rows(self, target_of: TargetOf, freeze: bool) -> None:
        d, out, cur = self.table, self.out, self.cur
        cols = ", ".join(quote_ident(c.name) for c in d.copy_columns)
        fmt = "FORMAT binary" if d.binary else "FORMAT text"
        parts = [(p.qualified, p) for p in d.leaves] if d.partkey else [(d.ref.qualified, None)]
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
            return
        for source_name, part in parts:
            copy_out = f"COPY {source_name} ({cols}) TO STDOUT WITH ({fmt})"
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
        """After the rows are in: verify, ANALYZE, and set identity sequences to the source's."""
        self._verify_checksum(table_name)
        t0 = time.monotonic()
        self.cur.execute(f"ANALYZE {table_name}")
        self.out.analyze_seconds = time.monotonic() - t0
        for c in self.table.columns:
            if c.identity and c.identity_seq is not None:
                seq = c.identity_seq
                value = (f"{seq.last_value}, true" if seq.last_value is not None
                         else f"{seq.start}, false")
                self.cur.execute("SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence("
                                 f"%s, %s), {value})", (table_name, c.name))

    def _verify_checksum(self, table_name: str) -> None:
        if self.settings.verify != "checksum":
            return
        d = self.table
        cols = [c.name for c in d.copy_columns]
        # A partitioned table is read with its partitions; a plain one without inheritance
        # children, exactly as COPY read it (on both sides: a target hierarchy has children).
        source = verify.checksum(self.src, d.ref.qualified, cols, only=not d.partkey)
        self.cur.execute(verify.checksum_sql(table_name, cols, only=not d.partkey))
        count, total = one_row(self.cur)
        if (int(count), str(total)) != source:
            raise TableError(f"{d.ref.qualified}: checksum mismatch between source and target "
                             f"({source[0]} vs {count} rows); the old table was kept")
