"""Plain (non-partition) inheritance parents: named in a warning, not reproduced."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet


def read_inheritance(cur: cursor, found: DefinitionSet) -> None:
    for child, parent in fetch_all(cur, """
        SELECT i.inhrelid, format('%%I.%%I', n.nspname, p.relname)
          FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
          JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhrelid = ANY(%s::oid[]) AND NOT c.relispartition""", (found.table_oids,)):
        found.tables[child].inherits_from.append(parent)
