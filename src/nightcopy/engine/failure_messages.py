"""One-line reasons for a table's failure: the server's message and, where known, the fix."""

from __future__ import annotations

import os
import re
import sys

from nightcopy.errors import TableError
from nightcopy.secrets import scrub

# SQLSTATE -> the fix, for errors raised while reading the source.
_SOURCE_FIXES = {
    "42501": "the source role lacks SELECT on it (or row-level security hides rows "
             "from it): GRANT SELECT, or use a role with BYPASSRLS",
    "57014": "a statement was cancelled on the source (statement_timeout?)",
}
# SQLSTATE -> the fix, for errors raised on the target.
_TARGET_FIXES = {
    "42883": "the target lacks a function the definition uses: create it there first "
             "(nightcopy copies tables, not functions)",
    "42704": "the target lacks an object the definition uses (an extension's type or "
             "operator class?): install it on the target",
    "42501": "the target role lacks a privilege: grant it CREATE on the schema/database "
             "and ownership of the replaced tables",
    "53100": "the target ran out of disk space",
    "57014": "a statement was cancelled on the target (statement_timeout?)",
    "2BP01": "other objects on the target depend on the table: drop them, or use "
             "--strategy truncate",
    "42P07": "an object with the same name already exists on the target",
    "23505": "the source's rows break a unique index or constraint on the target (one only the "
             "target has, kept by the swap?): drop it there, or make the rows unique",
    "23514": "a source row breaks a CHECK or partition bound (one only the target has, or a "
             "NOT VALID one on a target table the worker does not own): fix the rows or the "
             "constraint",
    "23502": "a source row has a NULL where the target's column is NOT NULL",
}


# SQLSTATE classes whose DETAIL describes objects, never row values (which dependent view, which
# columns' types, which process holds a lock): kept in messages, since they name the fix. Every
# other class's DETAIL may quote rows: 23 (integrity: "Failing row contains (...)", "Key
# (email)=(...)"), 22 (data), P0 (a RAISE's own text), XX and unknown ones. Those stay out of
# every message, hence out of the events, the ledger, the report and Slack.
_STRUCTURAL_DETAIL_CLASSES = frozenset({"0A", "2B", "40", "42", "53", "55"})
# In data exceptions (class 22) the primary message itself quotes the offending value
# (`invalid input syntax for type integer: "..."`): quoted spans are masked.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
DEBUG_ENV = "NIGHTCOPY_DEBUG"
WITHHELD = "details withheld: they may quote row values; NIGHTCOPY_DEBUG=1 prints them on stderr"


def _debug() -> bool:
    return bool(os.environ.get(DEBUG_ENV))


def pg_message(exc: BaseException, *, detail: bool = True) -> str:
    """The server's primary message (with the first line of its detail when that cannot hold
    row values), scrubbed of secrets. One line: never the CONTEXT (COPY quotes the row there).

    Row values reach no message: with NIGHTCOPY_DEBUG set they are printed on stderr only (on
    AWS that is CloudWatch Logs, a sensitive log group), never returned.
    """
    diag = getattr(exc, "diag", None)
    code = str(getattr(exc, "pgcode", None) or "")
    if diag is not None and getattr(diag, "message_primary", None):
        text = str(diag.message_primary)
        server_detail = str(diag.message_detail or "")
    else:
        text = (str(exc).strip().splitlines() or ["unknown error"])[0]
        server_detail = ""
    original = text
    withheld = False
    if code.startswith("22"):
        text = _QUOTED.sub('"..."', text)
        withheld = text != original
    if server_detail and detail:
        if code[:2] in _STRUCTURAL_DETAIL_CLASSES:
            text += f" ({server_detail.splitlines()[0]})"
        else:
            withheld = True
    if withheld:
        if _debug():
            _print_debug(code, original, server_detail if detail else "")
        text += f" ({WITHHELD})"
    return scrub(text)


def _print_debug(code: str, primary: str, server_detail: str) -> None:
    """The withheld text, for whoever debugs with NIGHTCOPY_DEBUG=1: stderr only."""
    line = f"nightcopy: debug: SQLSTATE {code}: {primary}"
    if server_detail:
        line += f"; DETAIL: {' '.join(server_detail.split())}"
    sys.stderr.write(scrub(line) + "\n")
    sys.stderr.flush()


def explain(table: str, exc: BaseException, side: str = "target") -> str:
    """A one-line reason naming the problem and, where known, the fix."""
    if isinstance(exc, TableError):
        return str(exc)
    code = getattr(exc, "pgcode", None) or ""
    message = pg_message(exc)
    if side == "source":
        hint = _SOURCE_FIXES.get(code)
        return f"{table}: reading the source failed: {message}" + (f"; {hint}" if hint else "")
    hint = _TARGET_FIXES.get(code)
    return f"{table}: {message}" + (f"; {hint}" if hint else "")
