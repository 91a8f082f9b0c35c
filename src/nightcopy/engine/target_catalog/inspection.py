"""Describe what stands on the target under a table's name, one reader per aspect.

Read per table, inside that table's transaction (and again under the swap's lock), so it
describes the target as the swap will find it. Adding an aspect is a new module and a line in
ASPECT_READERS.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg2.extensions import cursor

from nightcopy.engine.target_catalog import (
    carry_over,
    columns,
    dependents,
    family,
    foreign_keys,
    indexes,
    matviews,
    privileges,
    sequences,
    user_code,
    views,
)
from nightcopy.engine.target_catalog.target_table import TargetTable

# (cursor, the table being described, the tables of this invocation by qualified name)
AspectReader = Callable[[cursor, TargetTable, set[str]], None]

# The family (partitions) first: the readers after it cover the partitions too.
ASPECT_READERS: list[AspectReader] = [
    family.read_family,
    privileges.read_privileges,
    columns.read_columns,
    views.read_views,
    matviews.read_matviews,
    dependents.read_triggers_and_rules,
    foreign_keys.read_foreign_keys,
    carry_over.read_carry_over,
    sequences.read_owned_sequences,
    indexes.read_indexes,
    user_code.read_user_code,
]


def find_relation(cur: cursor, schema: str, name: str) -> tuple[int, str, str] | None:
    """(oid, relkind, owner) of the relation with that name, None when there is none."""
    cur.execute("""SELECT c.oid, c.relkind, pg_catalog.pg_get_userbyid(c.relowner)
                     FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relname = %s""", (schema, name))
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


def inspect(cur: cursor, schema: str, name: str, listed: set[str]) -> TargetTable | None:
    """Describe the existing target table (None when there is none)."""
    found = find_relation(cur, schema, name)
    if found is None:
        return None
    table = TargetTable(*found)
    if table.kind not in ("r", "p"):
        return table  # not a table: the caller refuses it, nothing more to read
    for read in ASPECT_READERS:
        read(cur, table, listed)
    return table
