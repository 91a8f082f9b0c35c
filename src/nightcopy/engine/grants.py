"""Privileges on relations: read from either side's catalog, and the GRANTs that restore them.

The owner's own rights are left out (they come with ownership); PUBLIC is named 'PUBLIC'. A
privilege held WITH GRANT OPTION reads "SELECT WITH GRANT OPTION" (the Grant pairs stay pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import Grant

ColumnGrant = tuple[str, str, str]  # (column, grantee, privilege)

GRANT_OPTION = " WITH GRANT OPTION"


@dataclass
class RelationGrants:
    table: list[Grant] = field(default_factory=list)
    columns: list[ColumnGrant] = field(default_factory=list)


def read_grants(cur: cursor, oids: list[int]) -> dict[int, RelationGrants]:
    """Table and column privileges of any number of relations, in one round trip."""
    found: dict[int, RelationGrants] = {oid: RelationGrants() for oid in oids}
    if not oids:
        return found
    for oid, column, grantee, privilege in fetch_all(cur, """
        SELECT c.oid, NULL::text, COALESCE(r.rolname, 'PUBLIC'),
               a.privilege_type || CASE WHEN a.is_grantable THEN %(option)s ELSE '' END
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = ANY(%(oids)s::oid[]) AND a.grantee <> c.relowner
        UNION ALL
        SELECT c.oid, att.attname, COALESCE(r.rolname, 'PUBLIC'),
               a.privilege_type || CASE WHEN a.is_grantable THEN %(option)s ELSE '' END
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0
                                           AND NOT att.attisdropped AND att.attacl IS NOT NULL,
               pg_catalog.aclexplode(att.attacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = ANY(%(oids)s::oid[]) AND a.grantee <> c.relowner""",
            {"oids": oids, "option": GRANT_OPTION}):
        if column is None:
            found[oid].table.append((grantee, privilege))
        else:
            found[oid].columns.append((column, grantee, privilege))
    return found


def grants_sql(table: str, grants: RelationGrants, existing_roles: set[str]
               ) -> tuple[list[str], list[str]]:
    """GRANTs for roles that exist here; returns (statements, roles skipped)."""
    requested = [(grantee, privilege, f" ON {table}") for grantee, privilege in grants.table]
    requested += [(grantee, privilege, f" ({quote_ident(column)}) ON {table}")
                  for column, grantee, privilege in grants.columns]
    out, skipped = [], []
    for grantee, privilege, what in requested:
        bare = privilege.removesuffix(GRANT_OPTION)
        option = GRANT_OPTION if bare != privilege else ""
        if grantee == "PUBLIC":
            out.append(f"GRANT {bare}{what} TO PUBLIC{option}")
        elif grantee in existing_roles:
            out.append(f"GRANT {bare}{what} TO {quote_ident(grantee)}{option}")
        else:
            skipped.append(grantee)
    return out, sorted(set(skipped))
