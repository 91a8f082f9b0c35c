"""What nightcopy records of the functions it copies to the target under trust, so that a later
night may use (and refresh) its own copy and never another role's function.

TODO(integrator): the ledger should hold these rows. Add, in the ledger migration that ships
with this change (the next schema_version after the one adding table oids):

    CREATE TABLE nightcopy.copied_functions (
        signature   text PRIMARY KEY,          -- schema.name(argument types), as on the source
        function_oid oid NOT NULL,             -- the target's pg_proc oid
        run_id      text NOT NULL,             -- the run that created or last refreshed it
        copied_at   timestamptz NOT NULL DEFAULT now()
    );

record_copied_function() writes there as soon as the table exists, and created_by_nightcopy()
reads it first. Until then the record is the function itself: owned by the worker's role (only
the owner or a superuser can set its comment) and carrying COPIED_MARK as its comment.
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_value

COPIED_MARK = "copied by nightcopy from the source (trusted); replaced by it on every copy"
_LEDGER_TABLE = "nightcopy.copied_functions"


def record_copied_function(cur: cursor, signature: str, run_id: str) -> None:
    """Mark the function (just created or refreshed by the worker) as nightcopy's."""
    cur.execute("COMMENT ON FUNCTION " + signature + " IS %s", (COPIED_MARK,))
    if fetch_value(cur, "SELECT pg_catalog.to_regclass(%s)", (_LEDGER_TABLE,)) is not None:
        cur.execute(f"INSERT INTO {_LEDGER_TABLE} (signature, function_oid, run_id) "
                    "VALUES (%s, pg_catalog.to_regprocedure(%s), %s) "
                    "ON CONFLICT (signature) DO UPDATE SET function_oid = EXCLUDED.function_oid,"
                    " run_id = EXCLUDED.run_id, copied_at = now()",
                    (signature, signature, run_id))


def created_by_nightcopy(cur: cursor, signature: str) -> bool:
    """Whether the target's function of that signature is one nightcopy copied."""
    if fetch_value(cur, "SELECT pg_catalog.to_regclass(%s)", (_LEDGER_TABLE,)) is not None:
        return bool(fetch_value(cur, f"SELECT count(*) FROM {_LEDGER_TABLE} WHERE signature = %s"
                                " AND function_oid = pg_catalog.to_regprocedure(%s)",
                                (signature, signature)))
    return bool(fetch_value(cur, """
        SELECT count(*) FROM pg_catalog.pg_proc p
         WHERE p.oid = pg_catalog.to_regprocedure(%s)
           AND p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
           AND pg_catalog.obj_description(p.oid, 'pg_proc') = %s""", (signature, COPIED_MARK)))
