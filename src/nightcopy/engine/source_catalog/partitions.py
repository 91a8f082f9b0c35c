"""Partition trees (all levels), parents before children."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import PartitionDef


def read_partitions(cur: cursor, found: DefinitionSet) -> None:
    for (root, oid, schema, name, parent, bound, partkey, is_partition, reloptions,
         toast_options, access_method) in fetch_all(cur, """
        WITH RECURSIVE tree AS (
            SELECT i.inhrelid AS oid, i.inhparent AS parent, i.inhparent AS root, 1 AS depth
              FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY(%s::oid[])
            UNION ALL
            SELECT i.inhrelid, i.inhparent, t.root, t.depth + 1
              FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid)
        SELECT t.root, t.oid, n.nspname, c.relname, t.parent,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid),
               CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
               c.relispartition, c.reloptions, tc.reloptions,
               CASE WHEN c.relkind = 'r' THEN am.amname END
          FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
          LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
         ORDER BY t.root, t.depth, n.nspname, c.relname""", (found.table_oids,)):
        if not is_partition:
            # Plain inheritance child: COPY of the parent copies only the parent's own rows.
            continue
        partition = PartitionDef(oid, schema, name, parent, bound, partkey)
        # Storage as a plain table's (table_storage): heap, every server's default, implicit;
        # a partitioned partition has no storage of its own to copy.
        partition.reloptions = [*(reloptions or []),
                                *(f"toast.{option}" for option in toast_options or [])]
        partition.access_method = access_method if access_method != "heap" else None
        found.tables[root].partitions.append(partition)
        found.partitions[oid] = partition
