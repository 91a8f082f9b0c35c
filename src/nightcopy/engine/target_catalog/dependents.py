"""Triggers and rules on the table or its partitions: the swap would lose them, so they
block it (truncate keeps them)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_triggers_and_rules(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    rel_oids = table.relation_oids
    # Triggers cloned onto partitions (tgparentid, PostgreSQL 13+) are their parent's.
    triggers = fetch_all(cur, """SELECT t.tgname FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal
                      AND t.tgparentid = 0""" if cur.connection.server_version >= 130000 else
                         """SELECT t.tgname FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal""", (rel_oids,))
    table.blockers += [f"trigger {name} is defined on it" for name, in triggers]
    rules = fetch_all(cur, """SELECT r.rulename FROM pg_catalog.pg_rewrite r
                    WHERE r.ev_class = ANY(%s::oid[]) AND r.rulename <> '_RETURN'""", (rel_oids,))
    table.blockers += [f"rule {name} is defined on it" for name, in rules]
