"""Foreign keys into the table (from listed tables: dropped and re-added; from others: they
block the swap), its own keys into listed tables (dropped and re-added by a truncate) and the
tables its own foreign keys reference (locked in order for the swap)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_foreign_keys(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    rel_oids = table.relation_oids
    for child, conname in fetch_all(cur, """
        SELECT format('%%I.%%I', n.nspname, c.relname), k.conname
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.confrelid = ANY(%s::oid[])
           AND k.conrelid <> ALL(%s::oid[]) AND k.conparentid = 0""", (rel_oids, rel_oids)):
        if child in listed:
            table.incoming_fks.append((child, conname))
        else:
            table.blockers.append(f"foreign key {conname} of table {child} (not in this copy) "
                                  "references it")
    # A key of its own into a table of this copy (itself too) is re-added after the load from
    # the source's definition: loading with it in place would check every row against the
    # target's other tables mid-night, and reject the rows a NOT VALID key lets the source keep.
    table.outgoing_fks = [conname for conname, in fetch_all(cur, """
        SELECT k.conname FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.confrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.conrelid = %s AND k.conparentid = 0
           AND format('%%I.%%I', n.nspname, c.relname) = ANY(%s::text[])
         ORDER BY k.conname""", (table.oid, sorted(listed)))]
    table.referenced_tables = sorted(name for name, in fetch_all(cur, """
        SELECT DISTINCT format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.confrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.conrelid = ANY(%s::oid[])
           AND k.confrelid <> ALL(%s::oid[])""", (rel_oids, rel_oids)))
