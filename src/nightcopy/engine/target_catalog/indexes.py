"""The table's indexes that no constraint owns: target-only ones are rebuilt on the new table."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import IndexDef, index_body
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_indexes(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    table.indexes = [
        IndexDef(name, unique, index_body(indexdef, quoted_name, qualified, unique))
        for name, unique, indexdef, quoted_name, qualified in fetch_all(cur, """
        SELECT ic.relname, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid),
               pg_catalog.quote_ident(ic.relname), format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = %s
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                            WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)""",
                                                                        (table.oid,))]
