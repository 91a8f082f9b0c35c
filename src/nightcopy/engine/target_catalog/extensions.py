"""The extensions the tables need, created on the target when it lacks them (in
target_ddl.prepare_target's committed step, under its advisory lock, before collations and
types).

`CREATE EXTENSION IF NOT EXISTS name [VERSION v] SCHEMA s`, with the source's
version when the target's server offers it (pg_available_extension_versions, else the
server's default version) and the source's schema. It succeeds for the worker's role when the
extension is trusted (PostgreSQL 13+: `trusted = true` in its control file) and the role has
CREATE on the database, or when the role is a superuser; otherwise, or with
`--no-create-extensions` (option create_extensions), the tables that need it fail with the
exact statement for an administrator to run. An extension the target already has is used as it
is, whatever its version.

"""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
from psycopg2.extensions import cursor

from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.needed_objects import dependencies_first, needed_by_tables
from nightcopy.engine.pg_rows import fetch_all, fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import ExtensionDef, TableDef

Warn = Callable[[str], None]
_INSUFFICIENT_PRIVILEGE = "42501"


def create_extension_sql(cur: cursor, ext: ExtensionDef, offered_versions: set[str]) -> str:
    sql = f"CREATE EXTENSION IF NOT EXISTS {quote_ident(ext.name)}"
    if ext.version in offered_versions:
        sql += f" VERSION {_literal(cur, ext.version)}"
    return sql + f" SCHEMA {quote_ident(ext.schema)}"


def ensure_extensions(cur: cursor, defs: list[TableDef], create: bool,
                      warn: Warn) -> dict[int, str]:
    """Create the extensions the tables need and the target lacks; the tables whose extension
    could not be created, by oid, with the statement an administrator must run."""
    wanted, users = needed_by_tables(defs, lambda d: d.extensions, lambda e: e.name)
    if not wanted:
        return {}
    installed = {r[0] for r in fetch_all(cur, "SELECT extname FROM pg_catalog.pg_extension")}
    offered: dict[str, set[str]] = {}
    for name, version in fetch_all(cur, "SELECT name, version FROM "
                                   "pg_catalog.pg_available_extension_versions "
                                   "WHERE name = ANY(%s)", (sorted(wanted),)):
        offered.setdefault(name, set()).add(version)
    failures: dict[int, str] = {}
    failed: dict[str, str] = {}
    # Already in dependency order per table; across tables, an extension after its requirements.
    for ext in dependencies_first(wanted, lambda e: e.requires):
        if ext.name in installed:
            continue
        statement = create_extension_sql(cur, ext, offered.get(ext.name, set()))
        reason = next((f"it requires the extension {r}, which {failed[r]}" for r in ext.requires
                       if r in failed), None)
        if reason is None and not create:
            reason = ("the target lacks it and creating extensions is off "
                      "(--no-create-extensions)")
        elif reason is None and ext.name not in offered:
            reason = ("the target's server does not offer it (pg_available_extensions): "
                      "install its package on the target's server first")
        elif reason is None:
            reason = _try_create(cur, ext, statement)
        if reason is None:
            installed.add(ext.name)
            warn(f"created the extension {ext.name} on the target ({statement}; committed "
                 "before the load)")
            continue
        failed[ext.name] = "could not be created"
        message = (f"needs the extension {ext.name} (version {ext.version} on the source), "
                   f"which the target lacks: {reason}; run as an administrator on the target: "
                   f"{statement}")
        for d in users[ext.name]:
            failures.setdefault(d.ref.oid, message)
    return failures


def _try_create(cur: cursor, ext: ExtensionDef, statement: str) -> str | None:
    """None when created; else why not, in one line."""
    cur.execute("SAVEPOINT nightcopy_extension")
    try:
        if fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = %s",
                       (ext.schema,)) == 0:
            cur.execute(f"CREATE SCHEMA {quote_ident(ext.schema)}")
        cur.execute(statement)
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT nightcopy_extension")
        if getattr(exc, "pgcode", None) == _INSUFFICIENT_PRIVILEGE:
            return (f"the worker's role may not create it ({pg_message(exc, detail=False)}; a "
                    "role with CREATE on the database may create only trusted extensions)")
        return f"creating it failed ({pg_message(exc, detail=False)})"
    cur.execute("RELEASE SAVEPOINT nightcopy_extension")
    return None


def _literal(cur: cursor, value: str) -> str:
    return cur.mogrify("%s", (value,)).decode()
