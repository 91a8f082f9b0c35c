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
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import IndexDef, index_body
from nightcopy.engine.target_catalog.target_table import TargetTable


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


# Every relation that reads the table through rewrite rules (views, materialized views, rules
# of other tables), and through those, as views.read_views walks them.
_DEPENDENTS = """
WITH RECURSIVE deps AS (
    SELECT DISTINCT r.ev_class AS oid, 1 AS depth
      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid = ANY(%(rels)s::oid[]) AND r.ev_class <> ALL(%(rels)s::oid[])
    UNION ALL
    SELECT r.ev_class, deps.depth + 1
      FROM deps JOIN pg_catalog.pg_depend d ON d.refobjid = deps.oid
       AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> deps.oid AND deps.depth < 50)
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
