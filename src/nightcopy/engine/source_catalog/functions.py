"""The user functions each table's definition names and the target must have: the trusted
functions its load-time expressions call (ExpressionCall, from expression_calls; the trust
check has refused every untrusted one already), and every function a column default calls
(a default is not evaluated while loading, but CREATE TABLE needs its function to exist).

Built-in functions (pg_catalog) and extensions' (pg_depend deptype 'e') are not read: the
target has the first, and the second come with their extension (target_catalog/extensions).
target_catalog/functions decides what is copied, used, or refused.
"""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import FunctionDef, TableDef

_FUNCTIONS_SQL = """
WITH called(root, what, oid, in_default) AS (
    SELECT w.root, w.what, pg_catalog.to_regprocedure(w.signature)::oid, false
      FROM unnest(%(roots)s::oid[], %(whats)s::text[], %(signatures)s::text[])
           w(root, what, signature)
    UNION
    SELECT r.root, format('the default of the column %%I of %%s', a.attname,
                          r.relid::pg_catalog.regclass), m[1]::oid, true
      FROM unnest(%(rel_roots)s::oid[], %(relids)s::oid[]) r(root, relid)
      JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.relid
      JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
     CROSS JOIN LATERAL regexp_matches(ad.adbin::text, ':funcid ([0-9]+)', 'g') m
     WHERE a.attgenerated = '')
SELECT c.root, min(c.what), format('%%I.%%I(%%s)', n.nspname, p.proname,
                                    pg_catalog.oidvectortypes(p.proargtypes)),
       n.nspname, p.proname::text, l.lanname::text, p.prosecdef, p.prokind::text,
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) END,
       bool_and(c.in_default)
  FROM called c JOIN pg_catalog.pg_proc p ON p.oid = c.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE n.nspname <> 'pg_catalog'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
 GROUP BY c.root, p.oid, n.nspname, p.proname, p.proargtypes, l.lanname, p.prosecdef, p.prokind
 ORDER BY 1, 3"""


def read_functions(conn: connection, tables: dict[int, TableDef]) -> None:
    """Fill each table's `functions`."""
    if not tables:
        return
    roots, whats, signatures, rel_roots, relids = [], [], [], [], []
    for root, table in tables.items():
        for call in table.expression_calls:
            if call.kind == "function" and call.extension is None:
                roots.append(root)
                whats.append(call.what)
                signatures.append(call.signature)
        for relid in (root, *(p.oid for p in table.partitions)):
            rel_roots.append(root)
            relids.append(relid)
    with conn.cursor() as cur:
        rows = fetch_all(cur, _FUNCTIONS_SQL, {
            "roots": roots, "whats": whats, "signatures": signatures, "rel_roots": rel_roots,
            "relids": relids})
    for (root, what, signature, schema, name, language, definer, kind, definition,
         in_default_only) in rows:
        tables[root].functions.append(FunctionDef(
            what=what, signature=signature, schema=schema, name=name, language=language,
            security_definer=definer, kind=kind, definition=definition,
            in_default_only=in_default_only))
