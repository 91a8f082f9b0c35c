"""Looking up a function or operator on the target by its signature, on every version.

PostgreSQL before 16 raises, instead of returning NULL, when a type the signature names does
not exist: `to_regprocedure('public.f(public.t)')` fails while the table t (whose row type
f takes) is not on the target yet. Such a function does not exist there either: None.
"""

from __future__ import annotations

import psycopg2.errors
from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_value

_LOOKUPS = {"function": "to_regprocedure", "operator": "to_regoperator"}
_MISSING_NAME = (psycopg2.errors.UndefinedObject, psycopg2.errors.InvalidSchemaName)


def lookup(cur: cursor, kind: str, signature: str) -> int | None:
    """The oid of the target's function (kind 'function') or operator ('operator') of that
    signature, or None when there is none (also when a type it names does not exist)."""
    cur.execute("SAVEPOINT nightcopy_signature")
    try:
        oid = fetch_value(cur, f"SELECT pg_catalog.{_LOOKUPS[kind]}(%s)::oid", (signature,))
    except _MISSING_NAME:
        cur.execute("ROLLBACK TO SAVEPOINT nightcopy_signature")
        return None
    cur.execute("RELEASE SAVEPOINT nightcopy_signature")
    return None if oid is None else int(oid)
