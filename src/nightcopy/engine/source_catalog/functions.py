"""The user functions each table's definition names and the target must have: the trusted
functions its load-time expressions call (ExpressionCall, from expression_calls; the trust
check has refused every untrusted one already), every function a column default calls (a
default is not evaluated while loading, but CREATE TABLE needs its function to exist), and
what those depend on: the user functions they call where PostgreSQL records it (pg_depend: SQL
functions with a standard body, BEGIN ATOMIC; a string body or PL/pgSQL records nothing), and
the user types of their arguments and results (added to the table's types, so the prepare step
creates them first).

Built-in functions (pg_catalog) and extensions' (pg_depend deptype 'e') are not read: the
target has the first, and the second come with their extension (target_catalog/extensions).
target_catalog/functions decides what is copied, used, or refused.
"""

from __future__ import annotations

from psycopg2.extensions import connection, cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import FunctionDef, TableDef

FIRST_USER_OID = 16384

_NAMED_SQL = """
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
 WHERE a.attgenerated = ''"""

_USER_FUNCTION = """n.nspname <> 'pg_catalog'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                      AND e.objid = p.oid AND e.deptype = 'e')"""

_DETAILS_SQL = f"""
SELECT p.oid, format('%%I.%%I(%%s)', n.nspname, p.proname,
                     pg_catalog.oidvectortypes(p.proargtypes)),
       n.nspname, p.proname::text, l.lanname::text, p.prosecdef, p.prokind::text,
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) END,
       -- A table's row type is not a type to create: it comes with its table.
       ARRAY(SELECT t.oid FROM pg_catalog.pg_type t
               LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
              WHERE t.oid = ANY(p.proargtypes::oid[] || COALESCE(p.proallargtypes, '{{}}')
                                || p.prorettype)
                AND (c.oid IS NULL OR c.relkind = 'c')),
       ARRAY(SELECT d.refobjid FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_proc p2 ON p2.oid = d.refobjid
               JOIN pg_catalog.pg_namespace n2 ON n2.oid = p2.pronamespace
              WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
                AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND d.refobjid <> p.oid AND n2.nspname <> 'pg_catalog'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                 WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                   AND e.objid = p2.oid AND e.deptype = 'e')),
       (SELECT min(c.oid::pg_catalog.regclass::text) FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_class c ON c.oid = t.typrelid AND c.relkind <> 'c'
         WHERE t.oid = ANY(p.proargtypes::oid[] || COALESCE(p.proallargtypes, '{{}}')
                           || p.prorettype))
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE p.oid = ANY(%s::oid[]) AND {_USER_FUNCTION}"""

Details = tuple  # one _DETAILS_SQL row


def read_functions(conn: connection, tables: dict[int, TableDef]) -> None:
    """Fill each table's `functions` (a function after those it calls) and add their argument
    and result types to its `type_oids`."""
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
        named = fetch_all(cur, _NAMED_SQL, {
            "roots": roots, "whats": whats, "signatures": signatures, "rel_roots": rel_roots,
            "relids": relids})
        details = _details_closure(cur, {int(r[2]) for r in named if r[2] is not None})
    by_root: dict[int, dict[int, tuple[str, bool]]] = {}
    for root, what, oid, in_default in named:
        if oid is None or int(oid) not in details:
            continue
        seen = by_root.setdefault(root, {})
        previous = seen.get(int(oid))
        # Named by an expression and by a default: the expression is what runs while loading.
        if previous is None or (previous[1] and not in_default):
            seen[int(oid)] = (what, in_default)
    for root, seen in by_root.items():
        table = tables[root]
        for oid in _callees_first(list(seen), details):
            row = details[oid]
            what, in_default = seen.get(oid, (f"a function {_caller(oid, details)} calls",
                                              False))
            table.functions.append(FunctionDef(
                what=what, signature=row[1], schema=row[2], name=row[3], language=row[4],
                security_definer=row[5], kind=row[6], definition=row[7],
                in_default_only=in_default, row_type_of=row[10]))
            table.type_oids.update(int(t) for t in row[8] if int(t) >= FIRST_USER_OID)


def _details_closure(cur: cursor, oids: set[int]) -> dict[int, Details]:
    found: dict[int, Details] = {}
    pending = oids
    while pending:
        for row in fetch_all(cur, _DETAILS_SQL, (sorted(pending),)):
            found[int(row[0])] = row
        pending = {int(c) for oid in pending if oid in found for c in found[oid][9]} - set(found)
    return found


def _callees_first(oids: list[int], details: dict[int, Details]) -> list[int]:
    ordered: list[int] = []
    seen: set[int] = set()

    def visit(oid: int) -> None:
        if oid in seen or oid not in details:
            return
        seen.add(oid)
        for callee in details[oid][9]:
            visit(int(callee))
        ordered.append(oid)

    for oid in sorted(oids):
        visit(oid)
    return ordered


def _caller(callee: int, details: dict[int, Details]) -> str:
    """The signature of a function that calls `callee` (for messages)."""
    for row in details.values():
        if callee in {int(c) for c in row[9]}:
            return str(row[1])
    return "a copied function"
