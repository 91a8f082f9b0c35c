"""Views (and views on views) that depend on the table or its partitions: the swap drops and
re-creates them. Materialized views are read by matviews.py; other dependent relations
(tables whose rules use it) block the swap."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.grants import RelationGrants, read_grants
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import KIND_NAMES
from nightcopy.engine.target_catalog.target_table import TargetTable, ViewDef

# Every relation that reads the relations %(rels)s through rewrite rules (views, materialized
# views, rules of other tables), and through those, with its depth (1: reads one of them).
DEPENDENTS_CTE = """
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
     WHERE r.ev_class <> deps.oid AND deps.depth < 50)"""


def read_views(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    rel_oids = table.relation_oids
    dependents = fetch_all(cur, DEPENDENTS_CTE + """
        SELECT c.oid, max(deps.depth), c.relkind, format('%%I.%%I', n.nspname, c.relname),
               CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END,
               c.reloptions, pg_catalog.pg_get_userbyid(c.relowner),
               pg_catalog.obj_description(c.oid, 'pg_class')
          FROM deps JOIN pg_catalog.pg_class c ON c.oid = deps.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         GROUP BY c.oid, c.relkind, n.nspname, c.relname
         ORDER BY max(deps.depth), c.oid""", {"rels": rel_oids})
    view_oids = [oid for oid, _, kind, *_ in dependents if kind == "v"]
    grants = read_grants(cur, view_oids)
    column_comments = _column_comments(cur, view_oids)
    for oid, depth, kind, name, definition, options, owner, comment in dependents:
        if kind == "m":
            continue  # rebuilt by the swap, refreshed by truncate: target_catalog/matviews.py
        if kind != "v":
            table.blockers.append(f"{KIND_NAMES.get(kind, 'an object')} {name} depends on it")
            continue
        # Only table-level grants are restored on the re-created view: column grants on a
        # view are not carried over (a known gap, not widened or closed by this reader).
        view_grants = RelationGrants(table=grants[oid].table)
        table.views.append(ViewDef(oid, name, definition, list(options or []), owner,
                                   view_grants, comment, column_comments.get(oid, []), depth))


def _column_comments(cur: cursor, view_oids: list[int]) -> dict[int, list[tuple[str, str]]]:
    found: dict[int, list[tuple[str, str]]] = {}
    if not view_oids:
        return found
    for oid, column, comment in fetch_all(cur, """
        SELECT d.objoid, a.attname, d.description FROM pg_catalog.pg_description d
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
         WHERE d.objoid = ANY(%s::oid[]) AND d.classoid = 'pg_catalog.pg_class'::regclass
           AND d.objsubid > 0""", (view_oids,)):
        found.setdefault(oid, []).append((column, comment))
    return found
