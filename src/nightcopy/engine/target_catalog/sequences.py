"""Sequences owned by the old table's columns (serial): they must outlive its DROP."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_owned_sequences(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    table.owned_sequences = [name for name, in fetch_all(cur, """
        SELECT format('%%I.%%I', n.nspname, s.relname)
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
          JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refobjid = %s AND d.deptype = 'a'""", (table.oid,))]
