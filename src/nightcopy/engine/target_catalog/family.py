"""The table's partitions, all levels."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_family(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    family = fetch_all(cur, """
        WITH RECURSIVE tree AS (
            SELECT %s::oid AS oid
            UNION ALL
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
        SELECT t.oid, c.relkind, format('%%I.%%I', n.nspname, c.relname)
          FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace""", (table.oid,))
    table.partition_oids = [oid for oid, _, _ in family if oid != table.oid]
    table.leaves = sorted(name for oid, kind, name in family if oid != table.oid and kind == "r")
