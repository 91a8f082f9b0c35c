"""Freshness (issue 17, optional per table): the newest value of a table's freshness column,
reported each night, and a warning when it is older than the table's max_age.

A row count cannot show that the source stopped being written to (a broken ingest job leaves
yesterday's rows in place); the newest `updated_at` can. Set in the object form of a table-list
entry: `{"table": "public.orders", "freshness_column": "updated_at", "max_age": "2d"}`.

It is read from the rows just loaded on the target (the staged copy, or the table a truncate
load filled, in the load's transaction): the source's rows as of the run's snapshot, with no
extra query on the source. A column that is missing or not a date or timestamp is a warning, not
a failure: freshness monitors the copy, it does not decide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2.extensions import cursor

from nightcopy.engine.events import EventWriter
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import TableDef
from nightcopy.engine.tablelist import TableEntry

# date, timestamp, timestamptz: what "the newest row" can be read from.
_TIME_TYPES = {1082, 1114, 1184}


@dataclass(frozen=True)
class FreshnessCheck:
    column: str
    max_age: str | None = None  # as written ("2d"); max_age_seconds is its value
    max_age_seconds: float | None = None


def checks_of(entries: Sequence[TableEntry]) -> dict[tuple[str, str], FreshnessCheck]:
    """The freshness checks the list's object entries set, by (schema, name)."""
    out = {}
    for e in entries:
        column = e.settings.get("freshness_column")
        if column is not None:
            age = e.settings.get("max_age")
            out[(e.spec.schema, e.spec.name)] = FreshnessCheck(
                column, age[0] if age else None, age[1] if age else None)
    return out


def report(cur: cursor, events: EventWriter, check: FreshnessCheck | None, d: TableDef,
           loaded_table: str, stale_tables: dict[str, dict]) -> None:
    """Emit table_freshness for the rows in `loaded_table`, and warn when they are stale
    (also recorded in `stale_tables`, by table: the report file's `stale_tables`)."""
    if check is None:
        return
    q = d.ref.qualified
    column = next((c for c in d.columns if c.name == check.column), None)
    if column is None or column.type_oid not in _TIME_TYPES:
        why = "is not a column of the table" if column is None else "is not a date or timestamp"
        events.warn(f"{q}: freshness_column {check.column} {why}; no freshness reported (fix "
                    "the table list entry)", q)
        return
    col = quote_ident(check.column)
    (newest, age), = fetch_all(cur, f"""
        SELECT pg_catalog.to_char(max({col})::timestamptz AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               EXTRACT(EPOCH FROM pg_catalog.now() - max({col})::timestamptz)::float8
          FROM {loaded_table}""")
    stale = check.max_age_seconds is not None and (age is None or age > check.max_age_seconds)
    events.emit("table_freshness", table=q, column=check.column, newest=newest,
                age_seconds=None if age is None else round(age, 1),
                max_age_seconds=check.max_age_seconds, stale=stale)
    if stale:
        stale_tables[q] = {"table": q, "column": check.column, "newest": newest,
                           "max_age": check.max_age}
        seen = ("it has no rows" if newest is None else
                f"its newest {check.column} is {newest}, {_days(age)} old")
        events.warn(f"{q}: {seen}, more than max_age {check.max_age}: the source may have "
                    "stopped being written to", q)


def _days(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} hours"
