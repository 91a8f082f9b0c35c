"""Target-side code that loading rows into the table would run as the worker's role.

COPY into an existing table fires its triggers and evaluates, for every row, its CHECK
constraints, the CHECKs of the domains its columns use, its generated columns, its partition
key expressions and its index expressions and predicates, all as the role that runs the COPY
(the worker), not as the role that wrote them. A low-privileged target user who owns a copied
table, or who wrote a function such code calls, would run code with the worker's privileges.

What counts as safe, decided on the target's catalog: a function in pg_catalog, one that
belongs to an extension (pg_depend deptype 'e'; an extension is trusted by creating it), one
the worker's own role owns, or one the user trusts (--trust, the same rule as for the source's
expressions: without_trusted, applied by engine/table_guard before the load). Everything else,
and every user trigger whose function is not one of those, is recorded here; the truncate
strategy refuses a
table that has any, and the swap refuses to rebuild a target-only index that calls one (its
staged table belongs to the worker, and index builds run as the table's owner).

Column defaults are not listed: COPY supplies every column, so they are not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable, UserCode

# A function is built-in when it lives in pg_catalog or belongs to an extension. One the
# worker's own role owns is its own code (only it, or a superuser, can replace it): running it
# as the worker grants nobody anything. Membership in the owner does not count here: operators
# grant the worker membership in tables' owners so that the swap can hand tables back.
_NOT_BUILT_IN = """
    p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
    AND p.proowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                     WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                       AND e.objid = p.oid AND e.deptype = 'e')"""

# Every function an object depends on: directly, or through an operator it uses.
_FUNCTIONS_OF = f"""
    SELECT o.kind, o.name, p.oid::pg_catalog.regprocedure::text
      FROM objects o
      JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
      JOIN pg_catalog.pg_proc p ON
           (d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = d.refobjid)
        OR (d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
            AND p.oid = (SELECT op.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator op
                          WHERE op.oid = d.refobjid))
     WHERE {_NOT_BUILT_IN}"""

_QUERY = f"""
WITH RECURSIVE
rels(oid) AS (SELECT pg_catalog.unnest(%(rels)s::pg_catalog.oid[])),
-- The domains the columns use, and the domains those are built on.
domains(oid) AS (
    SELECT t.oid FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type t ON t.oid = a.atttypid AND t.typtype = 'd'
     WHERE a.attrelid IN (SELECT oid FROM rels) AND a.attnum > 0 AND NOT a.attisdropped
    UNION
    SELECT t.oid FROM domains dm JOIN pg_catalog.pg_type b ON b.oid = dm.oid
      JOIN pg_catalog.pg_type t ON t.oid = b.typbasetype AND t.typtype = 'd'),
objects(kind, name, classid, objid) AS (
    SELECT 'index', ic.relname::text, 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid,
           i.indexrelid
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'check constraint', k.conname::text,
           'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, k.oid
      FROM pg_catalog.pg_constraint k
     WHERE k.conrelid IN (SELECT oid FROM rels) AND k.contype = 'c'
    UNION ALL
    SELECT 'domain check', pg_catalog.format('%%s on %%s', k.conname, k.contypid::pg_catalog.regtype),
           'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, k.oid
      FROM pg_catalog.pg_constraint k WHERE k.contypid IN (SELECT oid FROM domains)
    UNION ALL
    SELECT 'generated column', a.attname::text,
           'pg_catalog.pg_attrdef'::pg_catalog.regclass::pg_catalog.oid, ad.oid
      FROM pg_catalog.pg_attrdef ad
      JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
     WHERE ad.adrelid IN (SELECT oid FROM rels) AND a.attgenerated <> ''
    UNION ALL
    -- A table's own dependencies on functions are its partition key expressions.
    SELECT 'partition key of', c.oid::pg_catalog.regclass::text,
           'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, c.oid
      FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT oid FROM rels) AND c.relkind = 'p'
)
{_FUNCTIONS_OF}
UNION
SELECT 'trigger', t.tgname::text, t.tgfoid::pg_catalog.regprocedure::text
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid IN (SELECT oid FROM rels) AND NOT t.tgisinternal AND {_NOT_BUILT_IN}
ORDER BY 1, 2, 3"""


def read_user_code(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    table.user_code = [UserCode(kind, name, calls) for kind, name, calls
                       in fetch_all(cur, _QUERY, {"rels": table.relation_oids})]


def without_trusted(cur: cursor, code: list[UserCode],
                    trusted: Callable[[str, str], bool]) -> list[UserCode]:
    """The entries whose function the user does not trust (`trusted(schema, name)`, the
    --trust list): a trusted function may run as the worker, as it may in the source's
    expressions. One catalog query, only when there is something to decide."""
    if not code:
        return code
    rows = fetch_all(cur, """
        SELECT c.calls, n.nspname::text, p.proname::text
          FROM pg_catalog.unnest(%s::text[]) c(calls)
          JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regprocedure(c.calls)
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace""",
                     ([c.calls for c in code],))
    trusted_calls = {calls for calls, schema, name in rows if trusted(schema, name)}
    return [c for c in code if c.calls not in trusted_calls]
