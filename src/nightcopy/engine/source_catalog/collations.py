"""The user-created collations each table needs: its columns', its indexes' and those its CHECKs,
defaults and generated columns name (COLLATE), and its domains' (pg_depend through
source_catalog/dependencies). Built-in collations ("C", "default", the ones initdb imported)
are on every target under the same name and are not read.

Provider-specific fields differ by release (colliculocale on 15 and 16, colllocale from 17,
collicurules from 16): read through to_jsonb() so one query serves every source version.
"""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.dependencies import DEFINITION_OBJECTS_CTE, definition_params
from nightcopy.engine.table_model import CollationDef, TableDef

FIRST_USER_OID = 16384  # below: created by initdb, on every server

_COLLATIONS_SQL = f"""
WITH RECURSIVE {DEFINITION_OBJECTS_CTE}
SELECT DISTINCT r.root, co.oid, n.nspname, co.collname::text,
       format('%%I.%%I', n.nspname, co.collname), co.collprovider::text,
       co.collisdeterministic, co.collcollate::text, co.collctype::text,
       COALESCE(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale',
                CASE WHEN co.collprovider = 'i' THEN co.collcollate::text END),
       to_jsonb(co) ->> 'collicurules',
       (SELECT e.extname FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_catalog.pg_collation'::pg_catalog.regclass AND d.objid = co.oid
           AND d.deptype = 'e' LIMIT 1)
  FROM ref r JOIN pg_catalog.pg_collation co
    ON r.refclassid = 'pg_catalog.pg_collation'::pg_catalog.regclass AND co.oid = r.refobjid
  JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace
 WHERE co.oid >= {FIRST_USER_OID}
 ORDER BY 1, 5"""


def read_collations(conn: connection, tables: dict[int, TableDef],
                    type_oids_of: dict[int, set[int]]) -> None:
    """Fill each table's `collations`."""
    if not tables:
        return
    with conn.cursor() as cur:
        rows = fetch_all(cur, _COLLATIONS_SQL, definition_params(tables, type_oids_of))
    for (root, oid, schema, name, qualified, provider, deterministic, lc_collate, lc_ctype,
         locale, rules, extension) in rows:
        tables[root].collations.append(CollationDef(
            oid=oid, schema=schema, name=name, qualified=qualified, provider=provider,
            deterministic=deterministic, lc_collate=lc_collate, lc_ctype=lc_ctype,
            locale=locale, icu_rules=rules, extension=extension))
