"""Each listed table's full definition, read in bulk: one query per aspect for all tables.

Hundreds of small tables cost a handful of round trips this way. Each aspect (columns,
constraints, ...) has a reader module of its own; adding an aspect is a new module and a line
in ASPECT_READERS. The session runs with search_path='' so pg_get_*def() and format_type()
return schema-qualified text that is valid on the target.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg2.extensions import connection, cursor

from nightcopy.engine.source_catalog import (
    columns,
    constraints,
    copy_format,
    expression_calls,
    indexes,
    inheritance,
    partitions,
    privileges,
    relation,
    self_references,
    sequences,
    table_storage,
)
from nightcopy.engine.source_catalog.definition_set import DefinitionSet
from nightcopy.engine.table_model import TableDef, TableRef

AspectReader = Callable[[cursor, DefinitionSet], None]

# In this order: partitions first (later readers cover them too), columns before what
# attaches to columns (column grants, identity sequences) and before the COPY format.
ASPECT_READERS: list[AspectReader] = [
    partitions.read_partitions,
    relation.read_relation,
    table_storage.read_table_storage,
    inheritance.read_inheritance,
    columns.read_columns,
    privileges.read_privileges,
    sequences.read_sequences,
    constraints.read_constraints,
    indexes.read_indexes,
    indexes.read_index_roles,
    copy_format.choose_copy_formats,
    expression_calls.read_expression_calls,
    self_references.read_self_references,  # after columns and constraints: re-deparses some
]


def load_definitions(conn: connection, tables: list[TableRef]) -> dict[int, TableDef]:
    """Read the full definition of every table (and its partitions) in bulk."""
    found = DefinitionSet({t.oid: TableDef(ref=t) for t in tables})
    if not found.tables:
        return found.tables
    with conn.cursor() as cur:
        for read in ASPECT_READERS:
            read(cur, found)
    return found.tables
