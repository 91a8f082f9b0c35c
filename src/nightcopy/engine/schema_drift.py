"""The schema-drift report (issue 17): what changed in a table's source definition since its last
successful copy, said each night (event `schema_changed`), also when the copy succeeds.

A deploy that drops or renames a column is copied faithfully, and the dashboards built on it
break in the morning with no one told why. Each table's definition as copied is recorded in the
ledger (`nightcopy.table_definitions`, ledger version 4) in the transaction of its swap or load,
so "recorded" and "swapped in" never disagree. Before loading, tonight's source definition is
compared with the latest recorded one: columns added, dropped, retyped, renamed (told by the
source's attnum, which RENAME COLUMN keeps and no new column reuses), constraints,
indexes and partitions added or dropped or changed. A column change on a table that target
views read names those views: they may break (a swap that cannot re-create them fails the
table, naming the view).

A table with no recorded definition (new, or copied before ledger version 4) reports nothing:
its definition is recorded for the next night.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg2.extensions import connection, cursor

from nightcopy.engine import column_masks, ledger
from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_all, fetch_value
from nightcopy.engine.table_model import TableDef
from nightcopy.engine.target_catalog.target_table import TargetTable

Definition = dict[str, Any]

_LATEST_SQL = f"""
SELECT (SELECT definition FROM {ledger.TABLE_DEFINITIONS} WHERE table_name = %s
         ORDER BY recorded_at DESC LIMIT 1)"""
_RECORD_SQL = f"""
INSERT INTO {ledger.TABLE_DEFINITIONS} (run_id, table_name, definition)
VALUES (%s, %s, %s)
ON CONFLICT (run_id, table_name) DO UPDATE SET definition = EXCLUDED.definition,
    recorded_at = now()"""


def source_attnums(src: connection, d: TableDef) -> dict[str, int]:
    """The columns' attnums on the source: what tells a rename (same attnum) from a drop and an
    add (PostgreSQL never reuses an attnum)."""
    with src.cursor() as scur:
        rows = fetch_all(scur, "SELECT attname, attnum FROM pg_catalog.pg_attribute WHERE "
                               "attrelid = %s AND attnum > 0 AND NOT attisdropped", (d.ref.oid,))
    return {str(name): int(num) for name, num in rows}


def definition_of(d: TableDef, attnums: dict[str, int]) -> Definition:
    """The parts of a definition the report compares, as JSON (the ledger's `definition`)."""
    return {
        "columns": [[c.name, c.type_sql, attnums.get(c.name)] for c in d.columns],
        "constraints": {k.name: k.definition for k in d.constraints},
        "indexes": {i.name: ("UNIQUE " if i.unique else "") + i.body for i in d.indexes},
        "partitions": sorted(p.qualified for p in d.partitions),
    }


def changes(before: Definition, after: Definition) -> list[str]:
    """What changed from `before` to `after`, one short phrase each, in a stable order."""
    out: list[str] = []
    old_cols = {c[2]: (c[0], c[1]) for c in before.get("columns", [])}
    new_cols = {c[2]: (c[0], c[1]) for c in after.get("columns", [])}
    for num, (name, _) in new_cols.items():
        if num in old_cols and old_cols[num][0] != name:
            out.append(f"column {old_cols[num][0]} renamed to {name}")
    out += [f"column {name} added ({ctype})" for num, (name, ctype) in new_cols.items()
            if num not in old_cols]
    out += [f"column {name} dropped" for num, (name, _) in old_cols.items()
            if num not in new_cols]
    out += [f"column {name} retyped {old_cols[num][1]} -> {ctype}"
            for num, (name, ctype) in new_cols.items()
            if num in old_cols and old_cols[num][1] != ctype]
    for kind, what in (("constraints", "constraint"), ("indexes", "index")):
        old, new = before.get(kind, {}), after.get(kind, {})
        out += [f"{what} {n} added" for n in new if n not in old]
        out += [f"{what} {n} dropped" for n in old if n not in new]
        out += [f"{what} {n} changed: {new[n]}" for n in new if n in old and old[n] != new[n]]
    old_parts, new_parts = set(before.get("partitions", [])), set(after.get("partitions", []))
    out += [f"partition {p} added" for p in sorted(new_parts - old_parts)]
    out += [f"partition {p} dropped" for p in sorted(old_parts - new_parts)]
    return out


def report(src: connection, cur: cursor, events: EventWriter, d: TableDef,
           old: TargetTable | None, found_by_table: dict[str, dict],
           sensitive: Sequence[str] = ()) -> None:
    """Emit schema_changed when the source definition changed since the last recorded copy,
    and keep it in `found_by_table` for the report file (a retried table replaces its own).

    The source's definitions are compared (before excluded/masked columns are applied): a mask
    is intended, never drift. An added column whose name matches a `sensitive` glob, and that
    is not excluded or masked, says that it needs a decision."""
    q = d.ref.qualified
    before = fetch_value(cur, _LATEST_SQL, (q,))
    if before is None:
        return
    source_def = d.masked_from or d
    found = changes(before, definition_of(source_def, source_attnums(src, source_def)))
    decided = column_masks.decided_columns(d)
    added = {c.name for c in source_def.columns} - {c[0] for c in before.get("columns", [])}
    for i, text in enumerate(found):
        for name in added - decided:
            pattern = column_masks.sensitive_match(name, sensitive)
            if pattern and text.startswith(f"column {name} added ("):
                found[i] = (f"{text}: its name matches sensitive_column_patterns {pattern}: "
                            "decide (exclude_columns or mask in the table list, or copy it "
                            "knowingly)")
    if not found:
        return
    views = [v.qualified for v in old.views] if old is not None else []
    column_change = any(c.startswith("column ") and " added " not in c for c in found)
    change = {"table": q, "changes": found, "views": views if column_change else []}
    found_by_table[q] = change
    events.emit("schema_changed", table=q, changes=found, views=change["views"])


def record(src: connection, cur: cursor, d: TableDef, run_id: str) -> None:
    """Record the source's definition as copied (in the swap's or load's transaction)."""
    d = d.masked_from or d
    definition = definition_of(d, source_attnums(src, d))
    cur.execute(_RECORD_SQL, (run_id, d.ref.qualified, json.dumps(definition)))
