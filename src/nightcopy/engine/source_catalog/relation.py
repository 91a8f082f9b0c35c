"""Table-level properties: partition key, comment, persistence, storage options."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet


def read_relation(cur: cursor, found: DefinitionSet) -> None:
    for oid, partkey, comment, persistence, reloptions in fetch_all(cur, """
        SELECT c.oid, CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
               pg_catalog.obj_description(c.oid, 'pg_class'), c.relpersistence,
               c.reloptions
          FROM pg_catalog.pg_class c WHERE c.oid = ANY(%s::oid[])""", (found.table_oids,)):
        table = found.tables[oid]
        table.partkey, table.comment = partkey, comment
        table.unlogged = persistence == "u"
        table.reloptions = list(reloptions or [])
