"""The extensions each table's definition needs: a column's type, a default's or a CHECK's
function, an index's operator class or access method, a generated column's function, a domain's
base type: any object the definition depends on (pg_depend, source_catalog/dependencies) that
is a member of an extension (deptype 'e'), and the extensions those require.

The target creates them in its "what the target lacks" step (target_catalog/extensions).
"""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.needed_objects import dependencies_first
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.dependencies import DEFINITION_OBJECTS_CTE, definition_params
from nightcopy.engine.table_model import ExtensionDef, TableDef

_EXTENSIONS_SQL = f"""
WITH RECURSIVE {DEFINITION_OBJECTS_CTE},
direct(root, extoid) AS (
    SELECT r.root, x.refobjid
      FROM ref r JOIN pg_catalog.pg_depend x ON x.classid = r.refclassid
                                            AND x.objid = r.refobjid AND x.deptype = 'e'
     WHERE x.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass),
-- An extension that requires another (earthdistance: cube) needs that one created first.
needed(root, extoid) AS (
    SELECT * FROM direct
    UNION
    SELECT n.root, d.refobjid
      FROM needed n JOIN pg_catalog.pg_depend d
        ON d.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.objid = n.extoid
       AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'n')
SELECT n.root, e.extname, e.extversion, ns.nspname,
       ARRAY(SELECT r.extname FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_extension r ON r.oid = d.refobjid
              WHERE d.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.objid = e.oid AND d.deptype = 'n'
                AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
              ORDER BY 1)
  FROM needed n JOIN pg_catalog.pg_extension e ON e.oid = n.extoid
  JOIN pg_catalog.pg_namespace ns ON ns.oid = e.extnamespace
 ORDER BY n.root, e.extname"""


def read_extensions(conn: connection, tables: dict[int, TableDef],
                    type_oids_of: dict[int, set[int]]) -> None:
    """Fill each table's `extensions`, an extension after those it requires."""
    if not tables:
        return
    found: dict[int, dict[str, ExtensionDef]] = {}
    with conn.cursor() as cur:
        for root, name, version, schema, requires in fetch_all(
                cur, _EXTENSIONS_SQL, definition_params(tables, type_oids_of)):
            found.setdefault(root, {})[name] = ExtensionDef(name, version, schema,
                                                            tuple(requires))
    for root, by_name in found.items():
        tables[root].extensions = dependencies_first(by_name, lambda e: e.requires)
