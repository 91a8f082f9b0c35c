"""The statements for what a table carries beyond its columns and keys: column storage
(STORAGE, COMPRESSION, statistics, attribute options), NOT VALID checks (added after the load),
REPLICA IDENTITY and CLUSTER ON. Used by target_ddl on the staged table."""

from __future__ import annotations

from collections.abc import Callable

from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import Column, TableDef

NameOf = Callable[[str, str], str]  # (schema, name) -> where the relation is built


def column_storage_sql(table: str, columns: list[Column], without_compression: set[str]
                        ) -> list[str]:
    """STORAGE, COMPRESSION, SET STATISTICS and attribute options (n_distinct, ...) set on the
    source: as ALTER TABLE, which every supported target version accepts. Columns named in
    `without_compression` keep the target's default (it lacks the source's method)."""
    out = []
    for c in columns:
        actions = []
        name = quote_ident(c.name)
        if c.storage:
            actions.append(f"ALTER COLUMN {name} SET STORAGE {c.storage}")
        if c.compression and c.name not in without_compression:
            actions.append(f"ALTER COLUMN {name} SET COMPRESSION {c.compression}")
        if c.statistics is not None:
            actions.append(f"ALTER COLUMN {name} SET STATISTICS {c.statistics}")
        if c.attoptions:
            actions.append(f"ALTER COLUMN {name} SET ({', '.join(c.attoptions)})")
        if actions:
            out.append(f"ALTER TABLE {table} {', '.join(actions)}")
    return out


def not_valid_checks_sql(d: TableDef, name_of: NameOf) -> list[str]:
    """pg_get_constraintdef() ends a NOT VALID check with NOT VALID (and NO INHERIT, where
    set, is part of it too): added as it reads, after the rows are in."""
    out = [f"ALTER TABLE {name_of(d.ref.schema, d.ref.name)} ADD CONSTRAINT "
           f"{quote_ident(k.name)} {k.definition}"
           for k in d.constraints if k.kind == "c" and not k.validated]
    for p in d.partitions:
        out += [f"ALTER TABLE {name_of(p.schema, p.name)} ADD CONSTRAINT "
                f"{quote_ident(k.name)} {k.definition}"
                for k in p.constraints if k.kind == "c" and not k.validated]
    return out


REPLICA_IDENTITIES = {"n": "NOTHING", "f": "FULL"}


def index_roles_sql(d: TableDef, table: str) -> list[str]:
    out = []
    if d.replica_identity == "i" and d.replica_index:
        out.append(f"ALTER TABLE {table} REPLICA IDENTITY USING INDEX "
                   f"{quote_ident(d.replica_index)}")
    elif d.replica_identity in REPLICA_IDENTITIES:
        out.append(f"ALTER TABLE {table} REPLICA IDENTITY {REPLICA_IDENTITIES[d.replica_identity]}")
    if d.cluster_index:
        out.append(f"ALTER TABLE {table} CLUSTER ON {quote_ident(d.cluster_index)}")
    return out


