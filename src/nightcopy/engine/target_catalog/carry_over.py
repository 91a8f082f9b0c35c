"""Target-side row-level security, policies, extended statistics and publication membership:
re-created on the new table by the swap (as statements captured here)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all, fetch_value, one_row
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_carry_over(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    cur.execute("""
        SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_catalog.pg_class c
         WHERE c.oid = %s""", (table.oid,))
    rls, force = one_row(cur)
    if rls:
        table.carry_over.append(("ALTER TABLE ", " ENABLE ROW LEVEL SECURITY"))
    if force:
        table.carry_over.append(("ALTER TABLE ", " FORCE ROW LEVEL SECURITY"))
    table.carry_over += [(head, tail) for head, tail in fetch_all(cur, """
        SELECT format('CREATE POLICY %%I ON ', p.polname), format(' AS %%s FOR %%s TO %%s%%s%%s',
                      CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                           WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                                              ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r))
                                         END, ', ')
                         FROM unnest(p.polroles) AS r),
                      ' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')',
                      ' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')')
          FROM pg_catalog.pg_policy p WHERE p.polrelid = %s ORDER BY p.polname""", (table.oid,))]
    # The definition names the table by its (unchanged) qualified name.
    table.carry_over += [(definition, None) for definition, in fetch_all(cur, """
        SELECT pg_catalog.pg_get_statisticsobjdef(s.oid)
          FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid = %s""", (table.oid,))]
    table.publications = [name for name, in fetch_all(cur, """
        SELECT pg_catalog.quote_ident(p.pubname)
          FROM pg_catalog.pg_publication_rel pr
          JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
         WHERE pr.prrelid = %s""", (table.oid,))]
    if fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_policy WHERE polrelid = ANY(%s::oid[]) "
                   "AND polrelid <> %s", (table.relation_oids, table.oid)):
        table.lost.append("row-level security policies on its partitions")
