"""Table and column privileges on the source (re-granted on a table new to the target)."""

from __future__ import annotations

from psycopg2.extensions import cursor

from nightcopy.engine.grants import read_grants
from nightcopy.engine.source_catalog.definition_set import DefinitionSet


def read_privileges(cur: cursor, found: DefinitionSet) -> None:
    for oid, grants in read_grants(cur, found.table_oids).items():
        table = found.tables[oid]
        table.acl.extend(grants.table)
        for column_name, grantee, privilege in grants.columns:
            column = table.column(column_name)
            if column is not None:
                column.acl.append((grantee, privilege))
