"""The user functions the tables name, on the target (target_ddl.prepare_target's committed
step, after types: a function may take one): copied from the source under trust, used, or the
table fails naming the function.

The rules (docs/security.md, "Source expressions"):

- a **trusted** function (`--trust`) the target lacks is copied: the source's
  `pg_get_functiondef()` run on the target, SQL and PL/pgSQL only, SECURITY INVOKER only (a
  SECURITY DEFINER function would run as the worker for whoever calls it: refused), then
  EXECUTE revoked from PUBLIC (its owner, the worker, keeps it) and recorded as nightcopy's
  (copied_functions). A function nightcopy copied is refreshed from the source on every copy.
- an existing function of that signature that nightcopy did not create is used only if it is
  trusted by its own name (`schema.function`, not `schema.*`); otherwise the table fails
  naming it. nightcopy never replaces another role's function.
- an **untrusted** function named only by a default (not run while loading) must exist on the
  target; when it does not, the table fails naming it and how to trust it.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
from psycopg2.extensions import cursor

from nightcopy.engine.copied_functions import created_by_nightcopy, record_copied_function
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.needed_objects import needed_by_tables
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import qualified_name, quote_ident
from nightcopy.engine.table_model import FunctionDef, TableDef
from nightcopy.engine.target_catalog.signatures import lookup
from nightcopy.engine.trust import HOW_TO_TRUST, Trust

Warn = Callable[[str], None]
COPIED_LANGUAGES = ("sql", "plpgsql")


def ensure_functions(cur: cursor, defs: list[TableDef], trust: Trust, run_id: str,
                     warn: Warn) -> dict[int, str]:
    """Copy or check the functions the tables name; the tables that cannot have theirs, by
    oid, with the reason."""
    wanted, users = needed_by_tables(defs, lambda d: d.functions, lambda f: f.signature)
    failures: dict[int, str] = {}
    for signature, f in wanted.items():  # each table lists a function after its callees
        reason = _ensure(cur, f, trust, run_id, warn)
        if reason is not None:
            for d in users[signature]:
                failures.setdefault(d.ref.oid, reason)
    return failures


def _ensure(cur: cursor, f: FunctionDef, trust: Trust, run_id: str, warn: Warn) -> str | None:
    item = qualified_name(f.schema, f.name)
    trusted = any(e.spec.matches(f.schema, f.name) for e in trust.entries)
    exists = lookup(cur, "function", f.signature)
    ours = exists is not None and created_by_nightcopy(cur, f.signature)
    if exists is not None and not ours:
        if not trusted or trust.names(f.schema, f.name):
            return None  # the user's own (a default's, or trusted by name): used as it is
        return (f"{f.what} calls the function {f.signature}, which exists on the target but "
                "was not created by nightcopy: it is used only when trusted by its own name "
                f"({HOW_TO_TRUST} {item}); or drop it on the target so that nightcopy copies "
                "the source's")
    if not trusted:
        return (f"{f.what} calls the function {f.signature}, which does not exist on the "
                "target: create it there, or, if its source definition is safe to run as the "
                f"target role, trust it so that nightcopy copies it: {HOW_TO_TRUST} {item}")
    refusal = _not_copyable(f)
    if refusal is not None or f.definition is None:
        return (f"{f.what} calls the trusted function {f.signature}, which the target "
                f"{'has from an earlier copy' if ours else 'lacks'}: {refusal}")
    cur.execute("SAVEPOINT nightcopy_function")
    try:
        if fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = %s",
                       (f.schema,)) == 0:
            cur.execute(f"CREATE SCHEMA {quote_ident(f.schema)}")
        cur.execute(f.definition)
        cur.execute(f"REVOKE EXECUTE ON FUNCTION {f.signature} FROM PUBLIC")
        record_copied_function(cur, f.signature, run_id)
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT nightcopy_function")
        return (f"{f.what} calls the trusted function {f.signature}, which cannot be copied to "
                f"the target: {pg_message(exc, detail=False)}")
    cur.execute("RELEASE SAVEPOINT nightcopy_function")
    if not ours:
        warn(f"copied the trusted function {f.signature} from the source (EXECUTE revoked from "
             "PUBLIC; committed before the load)")
    return None


def _not_copyable(f: FunctionDef) -> str | None:
    if f.kind != "f" or f.definition is None:
        return ("it is not a plain function (an aggregate, window function or procedure): "
                "create it there first")
    if f.row_type_of is not None:
        return (f"it takes or returns the row type of the table {f.row_type_of}, which exists "
                "on the target only with that table: nightcopy cannot create the function "
                "before it; create both on the target first and trust the function by name")
    if f.language not in COPIED_LANGUAGES:
        return (f"it is written in {f.language}: nightcopy copies only SQL and PL/pgSQL "
                "functions; create it there first (with its module or extension)")
    if f.security_definer:
        return ("it is SECURITY DEFINER (it would run as its owner, the worker's role, for "
                "whoever calls it): nightcopy copies only SECURITY INVOKER functions; create it "
                "there as an administrator if that is intended")
    return None
