"""Columns: type, nullability, default, identity, generation, collation, comment, and how each
is stored (STORAGE, COMPRESSION, SET STATISTICS, attribute options such as n_distinct)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import Column

STORAGE_NAMES = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
COMPRESSION_NAMES = {"p": "pglz", "l": "lz4"}


def read_columns(cur: cursor, found: DefinitionSet) -> None:
    # attcompression is new in PostgreSQL 14; -1 (NULL from 17 on) is the default statistics.
    compression = ("NULLIF(a.attcompression, '')" if cur.connection.server_version >= 140000
                   else "NULL::\"char\"")
    for (relid, attname, type_sql, type_oid, notnull, default, identity, generated, collation,
         comment, storage, compress, statistics, attoptions) in fetch_all(cur, f"""
        SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid,
               a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity,
               a.attgenerated,
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                    format('%%I.%%I', cn.nspname, co.collname) END,
               pg_catalog.col_description(a.attrelid, a.attnum),
               CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END,
               {compression}, NULLIF(a.attstattarget, -1)::int, a.attoptions
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum""", (found.table_oids,)):
        table = found.tables[relid]
        table.columns.append(Column(
            attname, type_sql, type_oid, notnull, default, identity, generated, collation,
            comment, storage=STORAGE_NAMES.get(storage) if storage else None,
            compression=COMPRESSION_NAMES.get(compress) if compress else None,
            statistics=statistics, attoptions=list(attoptions or [])))
        table.type_oids.add(type_oid)
