"""How a table is stored and flagged, beyond its columns: access method (`USING heap2`), the
TOAST table's reloptions (`toast.*`), row-level security flags, REPLICA IDENTITY, and the
composite type of a typed table (`OF type`)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.source_catalog.definition_set import DefinitionSet


def read_table_storage(cur: cursor, found: DefinitionSet) -> None:
    for (oid, access_method, toast_options, rls, force_rls, replident, of_type,
         of_type_oid) in fetch_all(cur, """
        SELECT c.oid, am.amname, tc.reloptions, c.relrowsecurity, c.relforcerowsecurity,
               c.relreplident, pg_catalog.format_type(NULLIF(c.reloftype, 0), NULL),
               NULLIF(c.reloftype, 0)
          FROM pg_catalog.pg_class c
          LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
          LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
         WHERE c.oid = ANY(%s::oid[])""", (found.table_oids,)):
        table = found.tables[oid]
        # heap is every server's default: left implicit (partitioned tables have no AM before
        # PostgreSQL 17, and a USING there is refused by older targets).
        table.access_method = access_method if access_method not in (None, "heap") else None
        table.reloptions += [f"toast.{option}" for option in toast_options or []]
        table.row_security, table.force_row_security = rls, force_rls
        table.replica_identity = replident
        if of_type_oid is not None:
            table.of_type = of_type
            table.type_oids.add(of_type_oid)  # created first, like the columns' types
