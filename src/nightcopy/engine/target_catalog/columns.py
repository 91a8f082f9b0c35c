"""The table's non-generated columns (truncate loads only into identical columns)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_columns(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    table.columns = [(name, type_sql) for name, type_sql in fetch_all(cur, """
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
         ORDER BY a.attnum""", (table.oid,))]
