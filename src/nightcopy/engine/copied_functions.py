"""What nightcopy records of the functions it copies to the target under trust, so that a later
night may use (and refresh) its own copy and never another role's function.

The record is the ledger's nightcopy.copied_functions (engine/ledger.py, version 4): the
signature and the target's oid of each function nightcopy created or refreshed. By oid: a
function someone else creates under that signature after dropping nightcopy's is not
nightcopy's. The function also carries COPIED_MARK as its comment, for people (and for the
migration from ledgers before version 4, which recorded only that and the ownership).
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_value

COPIED_MARK = "copied by nightcopy from the source (trusted); replaced by it on every copy"
LEDGER_TABLE = "nightcopy.copied_functions"  # ledger.COPIED_FUNCTIONS


def record_copied_function(cur: cursor, signature: str, run_id: str) -> None:
    """Record the function (just created or refreshed by the worker) as nightcopy's."""
    cur.execute("COMMENT ON FUNCTION " + signature + " IS %s", (COPIED_MARK,))
    cur.execute(f"INSERT INTO {LEDGER_TABLE} (signature, function_oid, run_id) "
                "VALUES (%s, pg_catalog.to_regprocedure(%s), %s) "
                "ON CONFLICT (signature) DO UPDATE SET function_oid = EXCLUDED.function_oid,"
                " run_id = EXCLUDED.run_id, copied_at = now()",
                (signature, signature, run_id))


def created_by_nightcopy(cur: cursor, signature: str) -> bool:
    """Whether the target's function of that signature is one nightcopy copied."""
    return bool(fetch_value(cur, f"SELECT count(*) FROM {LEDGER_TABLE} WHERE signature = %s"
                            " AND function_oid = pg_catalog.to_regprocedure(%s)",
                            (signature, signature)))
