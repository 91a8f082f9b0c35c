"""The table's grants on the target: the swap gives them to the new table."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.grants import read_grants
from nightcopy.engine.target_catalog.target_table import TargetTable


def read_privileges(cur: cursor, table: TargetTable, listed: set[str]) -> None:
    table.grants = read_grants(cur, [table.oid])[table.oid]
