"""What the CHECKs of the target's own domains call, for the columns a load fills (issue 12).

A column whose type names a domain that already exists on the target gets that domain as it
stands there: nightcopy does not re-create it. Its CHECKs are evaluated as the worker for every
row loaded, and whoever owns the domain on the target (an analyst, say) wrote them. So they are
read here, from the target's catalog, exactly as source_catalog/expression_calls reads the
source's (the stored trees, `conbin`, which name every function and operator by oid; pg_depend
would miss built-ins such as pg_sleep()), following domains through arrays, domains over
domains, composite attributes and range subtypes. nightcopy.engine.trust decides.

Types are looked up by the name the column's definition uses (`to_regtype`), so a type the
target lacks is left out: nightcopy creates it from the source's definition, checked there.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.expression_calls import (
    _FUNCTIONS,
    _OPERATOR_LISTS,
    _OPERATORS,
    FIRST_USER_OID,
    TYPES_A_TYPE_REACHES,
)
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import TableDef


@dataclass(frozen=True)
class DomainCall:
    """A call in a CHECK of a target domain that a copied column uses, not built-in immutable."""

    table_oid: int  # the source table (TableDef.ref.oid) whose column uses the domain
    column: str  # "the column amount of app.orders"
    domain: str  # the domain whose CHECK it is (regtype text: schema-qualified)
    constraint: str
    kind: str  # function | operator
    signature: str
    schema: str
    name: str
    extension: str | None  # the extension the target's object belongs to, if any


_SQL = f"""
WITH RECURSIVE
col(root, what, typid) AS (
    SELECT c.root, c.what, pg_catalog.to_regtype(c.type_sql)::pg_catalog.oid
      FROM unnest(%s::oid[], %s::text[], %s::text[]) c(root, what, type_sql)),
typ(root, what, typid) AS (
    SELECT root, what, typid FROM col WHERE typid >= {FIRST_USER_OID}
    UNION
    SELECT t.root, t.what, sub.typid
      FROM typ t JOIN pg_catalog.pg_type ty ON ty.oid = t.typid
     CROSS JOIN LATERAL (
{TYPES_A_TYPE_REACHES}
     ) sub(typid)
     WHERE sub.typid >= {FIRST_USER_OID}),
checks(root, what, domain, conname, node) AS (
    SELECT DISTINCT t.root, t.what, t.typid::pg_catalog.regtype::text, k.conname::text,
           k.conbin::text
      FROM typ t JOIN pg_catalog.pg_constraint k ON k.contypid = t.typid
     WHERE k.conbin IS NOT NULL),
direct(root, what, domain, conname, refclassid, refobjid) AS (
    SELECT c.root, c.what, c.domain, c.conname, 'pg_catalog.pg_proc'::pg_catalog.regclass,
           m[2]::oid
      FROM checks c, regexp_matches(c.node, {_FUNCTIONS}, 'g') m
    UNION
    SELECT c.root, c.what, c.domain, c.conname, 'pg_catalog.pg_operator'::pg_catalog.regclass,
           m[1]::oid
      FROM checks c, regexp_matches(c.node, {_OPERATORS}, 'g') m
    UNION
    SELECT c.root, c.what, c.domain, c.conname, 'pg_catalog.pg_operator'::pg_catalog.regclass,
           o::oid
      FROM checks c, regexp_matches(c.node, {_OPERATOR_LISTS}, 'g') m,
           unnest(string_to_array(m[1], ' ')) o),
-- An operator runs its function: both must be allowed.
calls(root, what, domain, conname, refclassid, refobjid) AS (
    SELECT * FROM direct WHERE refobjid <> 0
    UNION
    SELECT d.root, d.what, d.domain, d.conname, 'pg_catalog.pg_proc'::pg_catalog.regclass,
           o.oprcode
      FROM direct d JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
     WHERE d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass),
named(root, what, domain, conname, kind, signature, schema, name, built_in, refclassid,
      refobjid) AS (
    SELECT c.root, c.what, c.domain, c.conname, 'function',
           format('%%I.%%I(%%s)', n.nspname, p.proname,
                  pg_catalog.oidvectortypes(p.proargtypes)), n.nspname::text, p.proname::text,
           n.nspname = 'pg_catalog' AND p.provolatile = 'i', c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_proc p ON p.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE c.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL
    SELECT c.root, c.what, c.domain, c.conname, 'operator',
           format('%%I.%%s(%%s,%%s)', n.nspname, o.oprname,
                  COALESCE(pg_catalog.format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
                  COALESCE(pg_catalog.format_type(NULLIF(o.oprright, 0), NULL), 'NONE')),
           n.nspname::text, o.oprname::text, n.nspname = 'pg_catalog', c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_operator o ON o.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
     WHERE c.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass)
SELECT x.root, x.what, x.domain, x.conname, x.kind, x.signature, x.schema, x.name,
       (SELECT e.extname::text FROM pg_catalog.pg_depend de
          JOIN pg_catalog.pg_extension e ON e.oid = de.refobjid
         WHERE de.classid = x.refclassid AND de.objid = x.refobjid AND de.deptype = 'e'
           AND de.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass LIMIT 1)
  FROM named x WHERE NOT x.built_in
 ORDER BY x.root, x.what, x.domain, x.conname, x.kind, x.signature"""


def read_domain_calls(cur: cursor, defs: list[TableDef]) -> list[DomainCall]:
    """The calls in the CHECKs of the target's domains that the tables' columns use (one query
    for all tables; reads the catalog, writes nothing)."""
    roots: list[int] = []
    whats: list[str] = []
    type_names: list[str] = []
    for d in defs:
        for c in d.columns:
            roots.append(d.ref.oid)
            whats.append(f"the column {quote_ident(c.name)} of {d.ref.qualified}")
            type_names.append(c.type_sql)
    if not roots:
        return []
    return [DomainCall(*row) for row in fetch_all(cur, _SQL, (roots, whats, type_names))]
