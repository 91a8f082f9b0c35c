"""Which source tables a table list means: names and globs resolved against the catalog."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg2.extensions import connection

from nightcopy.engine.ledger import LEDGER_SCHEMA
from nightcopy.engine.pg_rows import Row, fetch_all
from nightcopy.engine.sql_names import qualified_name
from nightcopy.engine.table_model import KIND_NAMES, TableRef
from nightcopy.engine.tablelist import TableSpec
from nightcopy.engine.target_ddl import STAGE_PREFIX
from nightcopy.errors import ConfigError

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def is_internal_schema(schema: str) -> bool:
    return (schema in SYSTEM_SCHEMAS or schema == LEDGER_SCHEMA or schema.startswith("pg_temp")
            or schema.startswith("pg_toast") or schema.startswith(STAGE_PREFIX))


def resolve_tables(conn: connection, specs: list[TableSpec],
                   exclude: Sequence[TableSpec] = ()) -> list[TableRef]:
    """Expand names and globs against the source, less the tables `exclude` names or matches
    (--exclude-table: it wins over the list, as pg_dump's -T over -t); errors name the problem
    and the fix."""
    with conn.cursor() as cur:
        rows = fetch_all(cur, """
            SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition,
                   format('%%I.%%I', n.nspname, c.relname),
                   EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e'),
                   -- a partitioned table's own size is 0: its partitions' (largest first)
                   CASE WHEN c.relkind = 'p' THEN
                        (SELECT coalesce(pg_catalog.sum(pg_catalog.pg_total_relation_size(
                                t.relid)), 0)::bigint
                           FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf)
                   ELSE pg_catalog.pg_total_relation_size(c.oid) END,
                   (SELECT format('%%I.%%I', pn.nspname, p.relname)
                      FROM pg_catalog.pg_inherits i
                      JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                      JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                     WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1)
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname !~ '^pg_(toast|temp)'""")
    by_name = {(r[1], r[2]): r for r in rows}
    chosen: dict[int, TableRef] = {}
    for spec in specs:
        if not spec.is_glob:
            row = by_name.get((spec.schema, spec.name))
            qualified = qualified_name(spec.schema, spec.name)
            if row is None:
                hint = _near_miss(spec, by_name)
                raise ConfigError(f"table {qualified} does not exist on the source{hint}; "
                                  "check the table list")
            oid, schema, name, kind, is_partition, q, ext_owned, size, parent = row
            if is_internal_schema(schema):
                raise ConfigError(f"{q} belongs to nightcopy's own schema and is never copied")
            if kind in KIND_NAMES:
                raise ConfigError(f"{q} is {KIND_NAMES[kind]} on the source, not a table; "
                                  "nightcopy copies tables only: remove it from the list")
            if is_partition:
                raise ConfigError(f"{q} is a partition of {parent}; list the partitioned table "
                                  f"{parent} instead (its partitions come with it)")
            chosen.setdefault(oid, TableRef(oid, schema, name, kind, q, size))
            continue
        matched = False
        for oid, schema, name, kind, is_partition, q, ext_owned, size, _parent in rows:
            if (kind in ("r", "p") and not is_partition and not ext_owned
                    and not is_internal_schema(schema) and spec.matches(schema, name)):
                matched = True
                chosen.setdefault(oid, TableRef(oid, schema, name, kind, q, size))
        if not matched:
            raise ConfigError(f"{spec.text!r} matches no table on the source; check the "
                              "pattern (globs match unquoted parts: sales.*, *.orders)")
    kept = [t for t in chosen.values() if not excluded(exclude, t.schema, t.name)]
    if chosen and not kept:
        raise ConfigError("every table of the list is excluded by exclude_table ("
                          f"{', '.join(s.text for s in exclude)}): nothing is left to copy; "
                          "check --exclude-table (or options.exclude_table)")
    return sorted(kept, key=lambda t: (t.schema, t.name))


def excluded(exclude: Sequence[TableSpec], schema: str, name: str) -> TableSpec | None:
    """The exclusion (--exclude-table) that leaves the table out, or None."""
    return next((s for s in exclude if s.matches(schema, name)), None)


def _near_miss(spec: TableSpec, by_name: dict[tuple[str, str], Row]) -> str:
    for schema, name in by_name:
        if schema.lower() == spec.schema.lower() and name.lower() == spec.name.lower():
            return (f" (did you mean {qualified_name(schema, name)}? names with capitals need "
                    "double quotes)")
    return ""
