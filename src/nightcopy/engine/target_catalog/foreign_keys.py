"""Foreign keys into the table (from listed tables: dropped and re-added; from others: they
block the swap) and the tables its own foreign keys reference (locked in order for the swap)."""

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
    table.referenced_tables = sorted(name for name, in fetch_all(cur, """
        SELECT DISTINCT format('%%I.%%I', n.nspname, c.relname)
          FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class c ON c.oid = k.confrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.conrelid = ANY(%s::oid[])
           AND k.confrelid <> ALL(%s::oid[])""", (rel_oids, rel_oids)))
