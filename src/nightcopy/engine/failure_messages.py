"""One-line reasons for a table's failure: the server's message and, where known, the fix."""

from __future__ import annotations

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
}


def pg_message(exc: BaseException, *, detail: bool = True) -> str:
    """The server's primary message (with the first line of its detail), scrubbed of secrets."""
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        text = diag.message_primary
        if detail and diag.message_detail:
            text += f" ({diag.message_detail.splitlines()[0]})"
    else:
        text = (str(exc).strip().splitlines() or ["unknown error"])[0]
    return scrub(text)


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
