"""The user collations the tables need, created on the target when it lacks them (in
target_ddl.prepare_target's committed step, after extensions and before types: a domain may
use one): `CREATE COLLATION IF NOT EXISTS` with the source's provider, locale (or
lc_collate/lc_ctype), deterministic flag and ICU rules (PostgreSQL 16+). One the target's
server cannot provide (no ICU, an unknown locale, rules before 16) fails the tables that use
it, naming it. An existing collation of the same name is used as it is.
"""

from __future__ import annotations

import psycopg2
from psycopg2.extensions import cursor

from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.needed_objects import needed_by_tables
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import CollationDef, TableDef


def create_collation_sql(cur: cursor, c: CollationDef) -> str:
    provider = {"i": "icu", "c": "libc", "b": "builtin"}.get(c.provider, "libc")
    options = [f"provider = {provider}"]
    if provider == "libc":
        options += [f"lc_collate = {_literal(cur, c.lc_collate or 'C')}",
                    f"lc_ctype = {_literal(cur, c.lc_ctype or 'C')}"]
    else:
        options.append(f"locale = {_literal(cur, c.locale or '')}")
    if not c.deterministic:
        options.append("deterministic = false")
    if c.icu_rules:
        options.append(f"rules = {_literal(cur, c.icu_rules)}")
    return f"CREATE COLLATION IF NOT EXISTS {c.qualified} ({', '.join(options)})"


def ensure_collations(cur: cursor, defs: list[TableDef]) -> dict[int, str]:
    """Create the user collations the tables need and the target lacks (an existing one of the
    same name is used as it is); the tables whose collation could not be created, by oid."""
    wanted, users = needed_by_tables(defs, lambda d: d.collations, lambda c: c.oid)
    failures: dict[int, str] = {}
    for oid, c in sorted(wanted.items(), key=lambda item: item[1].qualified):
        if c.extension is not None or fetch_value(
                cur, "SELECT count(*) FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace"
                " n ON n.oid = co.collnamespace WHERE n.nspname = %s AND co.collname = %s",
                (c.schema, c.name)) > 0:
            continue  # an extension's collation comes with the extension
        statement = create_collation_sql(cur, c)
        cur.execute("SAVEPOINT nightcopy_collation")
        try:
            if fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = %s",
                           (c.schema,)) == 0:
                cur.execute(f"CREATE SCHEMA {quote_ident(c.schema)}")
            cur.execute(statement)
            cur.execute("RELEASE SAVEPOINT nightcopy_collation")
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT nightcopy_collation")
            message = (f"needs the collation {c.qualified}, which the target cannot provide "
                       f"({pg_message(exc, detail=False)}): create it there as an "
                       f"administrator ({statement}), or give the target's server that locale")
            for d in users[oid]:
                failures.setdefault(d.ref.oid, message)
    return failures


def _literal(cur: cursor, value: str) -> str:
    return cur.mogrify("%s", (value,)).decode()
