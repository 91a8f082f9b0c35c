"""Whether one of nightcopy's own schemas on the target (the ledger `nightcopy`, the staging
`nightcopy_stage_<schema>`) may be used: only when the worker's role controls it.

A schema's owner may drop what the worker built in it and put its own tables in their place
(the ledger with a trigger that fires as the worker on every table result, a staged table's
neighbours). So the schema, and everything in it, must belong to the worker's role or to a
role the worker is a member of by GRANT (a ledger created by a previous release under an admin
role the worker belongs to stays usable: that role's powers are a subset of the worker's).
Superuser status does not count as membership here: a superuser worker must still not take a
schema another role created first.
"""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.pg_rows import fetch_all
from nightcopy.errors import NightcopyError

# The worker's role and every role it is a member of through pg_auth_members.
_MINE = """
WITH RECURSIVE mine(oid) AS (
    SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
    UNION
    SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN mine ON m.member = mine.oid)
"""

# What in the schema belongs to another role: the schema itself, then its objects, then
# triggers on its tables (nightcopy puts none there).
_FOREIGN = _MINE + """
SELECT 'is owned by role', pg_catalog.pg_get_userbyid(n.nspowner)
  FROM pg_catalog.pg_namespace n
 WHERE n.nspname = %(schema)s AND n.nspowner NOT IN (SELECT oid FROM mine)
UNION ALL
SELECT pg_catalog.format('holds %%s owned by role', c.oid::pg_catalog.regclass),
       pg_catalog.pg_get_userbyid(c.relowner)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relowner NOT IN (SELECT oid FROM mine)
UNION ALL
SELECT pg_catalog.format('holds function %%s owned by role', p.oid::pg_catalog.regprocedure),
       pg_catalog.pg_get_userbyid(p.proowner)
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s AND p.proowner NOT IN (SELECT oid FROM mine)
UNION ALL
SELECT pg_catalog.format('holds a trigger %%I on %%s, put there by a role that may', t.tgname,
                         t.tgrelid::pg_catalog.regclass), 'create triggers on it'
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
LIMIT 3
"""


class ForeignSchema(NightcopyError):
    """One of nightcopy's schemas on the target is controlled by another role."""


def refuse_foreign(cur: cursor, schema: str, purpose: str) -> None:
    """Raise ForeignSchema naming what another role owns in `schema` (nothing: it is fine, or
    it does not exist yet)."""
    found = fetch_all(cur, _FOREIGN, {"schema": schema})
    if not found:
        return
    worker = fetch_all(cur, "SELECT current_user")[0][0]
    what = "; ".join(f"{how} {who}" for how, who in found)
    raise ForeignSchema(
        f"the target's schema {schema} ({purpose}) {what}, not by the worker's role {worker} "
        "or a role it is a member of: that role could plant code there that runs as the "
        f"worker, so nightcopy does not use it; check what it holds, then drop it (DROP "
        f"SCHEMA {schema} CASCADE) or give it and its objects to {worker} (ALTER SCHEMA "
        f"{schema} OWNER TO {worker}), and rerun")
