"""Whether the source role can read every listed table in full (checked before any write)."""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.table_model import TableDef
from nightcopy.errors import ConfigError


def check_readable(conn: connection, defs: dict[int, TableDef]) -> None:
    """Refuse, before anything is written, tables the source role cannot read in full.

    COPY reads partitions directly, so each partition needs SELECT too; and with row-level
    security on, the copy runs with row_security=off, which only the owner or a BYPASSRLS role
    may do."""
    oids = [o for d in defs.values() for o in [d.ref.oid, *(p.oid for p in d.partitions)]]
    if not oids:
        return
    with conn.cursor() as cur:
        rows = fetch_all(cur, """
        SELECT format('%%I.%%I', n.nspname, c.relname),
               pg_catalog.has_table_privilege(c.oid, 'SELECT'),
               c.relrowsecurity AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')
                 AND NOT (SELECT r.rolbypassrls FROM pg_catalog.pg_roles r
                           WHERE r.rolname = current_user)
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) ORDER BY 1""", (oids,))
    no_select = [r[0] for r in rows if not r[1]]
    if no_select:
        shown = ", ".join(no_select[:5]) + (f" and {len(no_select) - 5} more"
                                            if len(no_select) > 5 else "")
        raise ConfigError(f"the source role may not read {shown}: GRANT SELECT ON "
                          f"{no_select[0]} (and the others) TO it, partitions included")
    hidden = [r[0] for r in rows if r[2]]
    if hidden:
        raise ConfigError(f"row-level security would hide rows of {', '.join(hidden[:5])} from "
                          "the source role: copy as the tables' owner or a role with BYPASSRLS")
