"""Typed helpers that run a query and hand back its rows.

types-psycopg2 declares fetchone() as Optional; a query such as SELECT count(*) always
returns a row, so one_row() turns a missing row into a clear error instead of the callers
asserting it one by one.
"""

from __future__ import annotations

from typing import Any

from psycopg2.extensions import cursor

Row = tuple[Any, ...]


def fetch_all(cur: cursor, sql: str, params: tuple | list | dict = ()) -> list[Row]:
    cur.execute(sql, params)
    return cur.fetchall()


def one_row(cur: cursor) -> Row:
    """The row of the query just run, which must return one."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"the query returned no row: {cur.query!r}")
    return row


def fetch_value(cur: cursor, sql: str, params: tuple | list | dict = ()) -> Any:
    """The first column of the one row a query returns."""
    cur.execute(sql, params)
    return one_row(cur)[0]
