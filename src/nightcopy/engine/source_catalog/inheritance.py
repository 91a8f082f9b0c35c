"""Plain (non-partition) inheritance: each listed table's parents (in INHERITS order), its
children, and which of its columns come only from its parents (attislocal false).

table_units turns these into hierarchies copied as one unit when the parents are listed too.
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet


def read_inheritance(cur: cursor, found: DefinitionSet) -> None:
    oids = found.table_oids
    for child, parent_oid, parent in fetch_all(cur, """
        SELECT i.inhrelid, i.inhparent, format('%%I.%%I', n.nspname, p.relname)
          FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
          JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhrelid = ANY(%s::oid[]) AND NOT c.relispartition
         ORDER BY i.inhrelid, i.inhseqno""", (oids,)):
        found.tables[child].inherits_from.append(parent)
        found.tables[child].parent_oids.append(parent_oid)
    for parent_oid, child in fetch_all(cur, """
        SELECT i.inhparent, format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.inhparent = ANY(%s::oid[]) AND NOT c.relispartition
         ORDER BY i.inhparent, n.nspname, c.relname""", (oids,)):
        found.tables[parent_oid].inheritance_children.append(child)
    # A column both inherited and defined in the child stays local (attislocal): only the
    # others are left out of the child's CREATE TABLE ... INHERITS.
    for relid, column in fetch_all(cur, """
        SELECT a.attrelid, a.attname FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attinhcount > 0 AND NOT a.attislocal""", (oids,)):
        found.tables[relid].inherited_only_columns.add(column)
    if cur.connection.server_version >= 180000:
        for relid, column in fetch_all(cur, """
            SELECT k.conrelid, a.attname FROM pg_catalog.pg_constraint k
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
             WHERE k.conrelid = ANY(%s::oid[]) AND k.contype = 'n' AND k.conislocal
               AND k.coninhcount > 0""", (oids,)):
            found.tables[relid].local_not_null_columns.add(column)
