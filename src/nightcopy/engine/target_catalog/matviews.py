"""Materialized views on the target that read the table (directly, or through other
materialized views): the swap rebuilds them over the new rows (engine/matviews.py), the
truncate strategy refreshes them after the load.

One that reads the table through a plain view cannot be rebuilt by the swap (the view is
re-created only after the swap, so the new materialized view would be filled from the old
rows): it blocks the swap, naming both. Truncate refreshes it all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2.extensions import cursor

from nightcopy.engine.grants import RelationGrants, read_grants
from nightcopy.engine.pg_rows import Row, fetch_all
from nightcopy.engine.source_catalog.expression_calls import (
    _FUNCTIONS,
    _OPERATOR_LISTS,
    _OPERATORS,
)
from nightcopy.engine.table_model import IndexDef, index_body
from nightcopy.engine.target_catalog.target_table import TargetTable
from nightcopy.engine.target_catalog.views import DEPENDENTS_CTE


@dataclass
class MatviewDef:
    oid: int
    qualified: str
    schema: str
    name: str
    owner: str
    options: list[str]  # reloptions (storage parameters)
    grants: RelationGrants  # table and column privileges
    comment: str | None
    column_comments: list[tuple[str, str]]
    indexes: list[IndexDef]  # with their comments
    depth: int  # 1: reads the table; n: reads one of depth n-1 (the order to rebuild them in)
    populated: bool  # False: created WITH NO DATA and never refreshed; it is kept so
    reads: list[int] = field(default_factory=list)  # the relations its query reads (pg_depend)


# What reads the table through rewrite rules, as views.read_views walks them.
_DEPENDENTS = DEPENDENTS_CTE + """
SELECT c.oid, max(deps.depth), c.relkind, format('%%I.%%I', n.nspname, c.relname),
       n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner), c.reloptions,
       pg_catalog.obj_description(c.oid, 'pg_class'), c.relispopulated,
       ARRAY(SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
              WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND r.ev_class = c.oid AND d.refobjid <> c.oid ORDER BY 1)
  FROM deps JOIN pg_catalog.pg_class c ON c.oid = deps.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 GROUP BY c.oid, c.relkind, n.nspname, c.relname
 ORDER BY max(deps.depth), c.oid"""

_INDEXES = """
SELECT i.indrelid, ic.relname, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid),
       pg_catalog.quote_ident(ic.relname), format('%%I.%%I', n.nspname, c.relname),
       pg_catalog.obj_description(i.indexrelid, 'pg_class')
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid = ANY(%s::oid[])
 ORDER BY ic.relname"""

_COLUMN_COMMENTS = """
SELECT d.objoid, a.attname, d.description FROM pg_catalog.pg_description d
  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
 WHERE d.objoid = ANY(%s::oid[]) AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.objsubid > 0
 ORDER BY a.attnum"""


def read_matviews(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    rel_oids = set(table.relation_oids)
    rows = fetch_all(cur, _DEPENDENTS, {"rels": table.relation_oids})
    kinds = {row[0]: row[2] for row in rows}
    names = {row[0]: row[3] for row in rows}
    matview_rows = [row for row in rows if row[2] == "m"]
    oids = [row[0] for row in matview_rows]
    grants = read_grants(cur, oids)
    indexes: dict[int, list[IndexDef]] = {oid: [] for oid in oids}
    comments: dict[int, list[tuple[str, str]]] = {oid: [] for oid in oids}
    if oids:
        for oid, name, unique, indexdef, quoted, qualified, comment in fetch_all(
                cur, _INDEXES, (oids,)):
            indexes[oid].append(IndexDef(name, unique,
                                         index_body(indexdef, quoted, qualified, unique), comment))
        for oid, column, comment in fetch_all(cur, _COLUMN_COMMENTS, (oids,)):
            comments[oid].append((column, comment))
    # Rows come in dependency order (depth), so what a materialized view reads is judged first.
    blocked: dict[int, str] = {}  # matview oid -> the plain view it reads the table through
    for (oid, depth, _, qualified, schema, name, owner, options, comment, populated,
         reads) in matview_rows:
        through = None
        for read in reads:
            if read in rel_oids or read not in kinds:
                continue  # the table itself, or a relation that does not read it
            if kinds[read] != "m" or read in blocked:
                through = names[read]
                break
        if through is not None:
            blocked[oid] = through
            table.blockers.append(
                f"materialized view {qualified} reads it through {through}, which the swap "
                "re-creates only after the materialized view is rebuilt")
        table.matviews.append(MatviewDef(
            oid, qualified, schema, name, owner, list(options or []), grants[oid], comment,
            comments[oid], indexes[oid], depth, populated, list(reads)))


# The functions and operators a materialized view's query calls, read from its stored query
# tree as engine/source_catalog/expression_calls reads expressions (pg_depend lists no
# built-in), with the same patterns; only what is not a built-in immutable function or a
# built-in operator comes back.
_CALLS_SQL = f"""
WITH tree(node) AS (
    SELECT r.ev_action::text FROM pg_catalog.pg_rewrite r
     WHERE r.ev_class = %s AND r.rulename = '_RETURN'),
direct(refclassid, refobjid) AS (
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, m[2]::oid
      FROM tree t, regexp_matches(t.node, {_FUNCTIONS}, 'g') m
    UNION
    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, m[1]::oid
      FROM tree t, regexp_matches(t.node, {_OPERATORS}, 'g') m
    UNION
    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o::oid
      FROM tree t, regexp_matches(t.node, {_OPERATOR_LISTS}, 'g') m,
           unnest(string_to_array(m[1], ' ')) o),
calls(refclassid, refobjid) AS (
    SELECT * FROM direct WHERE refobjid <> 0
    UNION
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, o.oprcode
      FROM direct c JOIN pg_catalog.pg_operator o ON o.oid = c.refobjid
     WHERE c.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass),
named(kind, signature, schema, name, built_in, refclassid, refobjid) AS (
    SELECT 'function', format('%%I.%%I(%%s)', n.nspname, p.proname,
                              pg_catalog.oidvectortypes(p.proargtypes)),
           n.nspname, p.proname::text, n.nspname = 'pg_catalog' AND p.provolatile = 'i',
           c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_proc p ON p.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE c.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL
    SELECT 'operator', format('%%I.%%s(%%s,%%s)', n.nspname, o.oprname,
                              COALESCE(pg_catalog.format_type(NULLIF(o.oprleft, 0), NULL), 'NONE'),
                              COALESCE(pg_catalog.format_type(NULLIF(o.oprright, 0), NULL), 'NONE')),
           n.nspname, o.oprname::text, n.nspname = 'pg_catalog', c.refclassid, c.refobjid
      FROM calls c JOIN pg_catalog.pg_operator o ON o.oid = c.refobjid
      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
     WHERE c.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass)
SELECT x.kind, x.signature, x.schema, x.name,
       (SELECT e.extname FROM pg_catalog.pg_depend de
          JOIN pg_catalog.pg_extension e ON e.oid = de.refobjid
         WHERE de.classid = x.refclassid AND de.objid = x.refobjid AND de.deptype = 'e'
           AND de.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass LIMIT 1)
  FROM named x WHERE NOT x.built_in
 ORDER BY x.kind <> 'operator', x.signature"""


def query_calls(cur: cursor, oid: int) -> list[Row]:
    """(kind, signature, schema, name, extension) of each call of the materialized view's
    query that is not a built-in immutable function or a built-in operator."""
    return fetch_all(cur, _CALLS_SQL, (oid,))
