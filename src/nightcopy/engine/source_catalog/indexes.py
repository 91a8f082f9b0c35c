"""Indexes that no constraint owns and that are not inherited from a partitioned index."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import IndexDef, index_body


def read_indexes(cur: cursor, found: DefinitionSet) -> None:
    for relid, iname, idef, quoted_name, table, unique, comment in fetch_all(cur, """
        SELECT i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid),
               pg_catalog.quote_ident(ic.relname), format('%%I.%%I', n.nspname, c.relname),
               i.indisunique, pg_catalog.obj_description(i.indexrelid, 'pg_class')
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = ANY(%s::oid[])
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                            WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                              AND k.contype IN ('p', 'u', 'x'))
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
         ORDER BY i.indrelid, ic.relname""", (found.relation_oids,)):
        index = IndexDef(iname, unique, index_body(idef, quoted_name, table, unique), comment)
        if relid in found.tables:
            found.tables[relid].indexes.append(index)
        else:
            found.partitions[relid].indexes.append(index)


def read_index_roles(cur: cursor, found: DefinitionSet) -> None:
    """The index a table is CLUSTERed ON and the one its REPLICA IDENTITY uses (key indexes
    included), re-marked on the target after the indexes are built."""
    for relid, iname, clustered, replident in fetch_all(cur, """
        SELECT i.indrelid, ic.relname, i.indisclustered, i.indisreplident
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = ANY(%s::oid[]) AND (i.indisclustered OR i.indisreplident)""",
                                                      (found.table_oids,)):
        table = found.tables[relid]
        if clustered:
            table.cluster_index = iname
        if replident:
            table.replica_index = iname
