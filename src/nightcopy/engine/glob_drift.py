"""Tables new or gone from a glob (issue 17, part of the schema-drift report): a table-list
glob such as `public.*` matches tonight what the source has tonight, so a table created or
dropped on the source joins or leaves the copy without anyone having changed the list. Each
such table is a `schema_changed` event (and in the report file's `schema_changes`), compared
with what the same group copied in its last successful invocation (the ledger's
table_results). A table gone from the source is not dropped from the target: the reporting
copy keeps its last rows, which the change says.

Nothing is reported for a group with no successful invocation yet, nor for tables named
without a glob (a named table that is gone fails the night instead).
"""

from __future__ import annotations

from psycopg2.extensions import connection

from nightcopy.engine import ledger
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.tablelist import TableSpec, parse_name

_LAST_COPIED_SQL = f"""
SELECT r.table_name FROM {ledger.TABLE_RESULTS} r
 WHERE r.status = 'copied' AND r.run_id = (
       SELECT i.run_id FROM {ledger.INVOCATIONS} i
        WHERE i.group_name = %s AND i.status = 'succeeded' AND i.run_id <> %s
        ORDER BY i.finished_at DESC NULLS LAST LIMIT 1)"""


def _matching(specs: list[TableSpec], qualified: str) -> TableSpec | None:
    ref = parse_name(qualified)
    return next((s for s in specs if s.matches(ref.schema, ref.name)), None)


def report(tgt: connection, events: EventWriter, specs: list[TableSpec], tonight: list[str],
           group: str | None, run_id: str, found_by_table: dict[str, dict],
           exclude: list[TableSpec] | None = None) -> None:
    """Emit schema_changed for each table a glob matches tonight and did not at the group's
    last successful invocation, or the other way round (also one an exclusion now leaves out);
    keep them in `found_by_table`."""
    globs = [s for s in specs if s.is_glob]
    if not globs and not exclude:
        return
    with tgt.cursor() as cur:
        before = {str(row[0]) for row in fetch_all(cur, _LAST_COPIED_SQL, (group or "", run_id))}
    tgt.commit()
    if not before:
        return
    now = set(tonight)
    changes: list[tuple[str, str]] = []
    for q in tonight:
        spec = _matching(globs, q)
        if q not in before and spec is not None:
            changes.append((q, f"table added: newly matched by {spec.text}"))
    for q in sorted(before - now):
        left_out = _matching(exclude or [], q)
        spec = _matching(globs, q)
        if left_out is not None:
            changes.append((q, f"table left out: excluded by {left_out.text} (the reporting "
                               "copy keeps its last rows)"))
        elif spec is not None:
            changes.append((q, f"table gone: no longer matched by {spec.text} (the reporting "
                               "copy keeps its last rows)"))
    for q, text in changes:
        found_by_table[q] = {"table": q, "changes": [text], "views": []}
        events.emit("schema_changed", table=q, changes=[text], views=[])
