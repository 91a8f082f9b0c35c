"""Columns: type, nullability, default, identity, generation, collation, comment."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import Column


def read_columns(cur: cursor, found: DefinitionSet) -> None:
    for (relid, attname, type_sql, type_oid, notnull, default, identity, generated, collation,
         comment) in fetch_all(cur, """
        SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid,
               a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity,
               a.attgenerated,
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                    format('%%I.%%I', cn.nspname, co.collname) END,
               pg_catalog.col_description(a.attrelid, a.attnum)
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum""", (found.table_oids,)):
        table = found.tables[relid]
        table.columns.append(Column(attname, type_sql, type_oid, notnull, default, identity,
                                    generated, collation, comment))
        table.type_oids.add(type_oid)
