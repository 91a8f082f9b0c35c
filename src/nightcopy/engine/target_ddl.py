"""Definitions on the target: what the tables need (schemas, types, sequences) and the DDL
that creates a table, its partitions, indexes, constraints and comments (grants: grants.py).

Tables are built in a staging schema of their own per target schema (nightcopy_stage_<schema>)
where they can carry the source's index and constraint names until the swap moves them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import psycopg2
from psycopg2.extensions import connection, cursor

from nightcopy.engine import table_details_ddl
from nightcopy.engine.failure_messages import pg_message
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.engine.sql_names import qualified_name, quote_ident
from nightcopy.engine.table_model import (
    Column,
    Constraint,
    IndexDef,
    SequenceDef,
    TableDef,
    TypeDef,
)
from nightcopy.engine.target_catalog import collations, extensions, functions, schema_owners
from nightcopy.engine.trust import Trust
from nightcopy.errors import TableError

STAGE_PREFIX = "nightcopy_stage_"


def stage_schema(schema: str) -> str:
    name = STAGE_PREFIX + schema
    if len(name.encode()) > 63:  # identifiers are cut at 63 bytes: keep it unique instead
        name = STAGE_PREFIX + hashlib.md5(schema.encode()).hexdigest()[:24]
    return name


def staged(schema: str, name: str) -> str:
    return qualified_name(stage_schema(schema), name)


Warn = Callable[[str], None]


PrepareFailures = dict[int, str]  # table oid -> why its prerequisites could not be created


def prepare_target(conn: connection, defs: list[TableDef], types: list[TypeDef],
                   warn: Warn, create_extensions: bool = True, trust: Trust | None = None,
                   run_id: str = "") -> PrepareFailures:
    """Create what the tables need and the target lacks, in one committed step: schemas,
    extensions (when `create_extensions`), user collations, types, the user functions the
    definitions name (copied under `trust`), sequences.

    Type changes must be committed before a load can use them (a new enum value cannot be used
    in the transaction that added it), so this is the one change that can outlive a failed run.
    """
    failures: PrepareFailures = {}
    schemas: set[str] = set()
    for d in defs:
        schemas.add(d.ref.schema)
        schemas.update(p.schema for p in d.partitions)
        schemas.update(s.schema for s in d.sequences)
    schemas.update(t.schema for t in types)
    type_users: dict[int, list[TableDef]] = {}
    for d in defs:
        for oid in type_closure(d.type_oids, types):
            type_users.setdefault(oid, []).append(d)

    refused: dict[str, str] = {}  # target schema -> why its staging schema is refused
    with conn.cursor() as cur:
        # Workers of several groups prepare at once: serialise, then look before creating.
        cur.execute("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('nightcopy.prepare'))")
        for schema in sorted(schemas):
            for s in (schema, stage_schema(schema)):
                if fetch_value(cur, "SELECT count(*) FROM pg_catalog.pg_namespace "
                               "WHERE nspname = %s", (s,)) == 0:
                    cur.execute(f"CREATE SCHEMA {quote_ident(s)}")
                elif s != schema:
                    # The staging schema is nightcopy's: when another role could plant objects
                    # among the staged tables or drop them, its tables fail before any is built.
                    try:
                        schema_owners.refuse_foreign(cur, s, f"where the tables of {schema} "
                                                     "are staged")
                    except schema_owners.ForeignSchema as exc:
                        refused[schema] = str(exc)
        # Extensions first: a type, a collation or a domain's base may be an extension's.
        for oid, message in extensions.ensure_extensions(cur, defs, create_extensions,
                                                         warn).items():
            failures.setdefault(oid, message)
        for oid, message in collations.ensure_collations(cur, defs).items():
            failures.setdefault(oid, message)
        failed_types: set[int] = set()
        for t in types:
            if any(dep in failed_types for dep in t.depends):
                failed_types.add(t.oid)
                continue
            cur.execute("SAVEPOINT nightcopy_type")
            try:
                _ensure_type(cur, t, warn)
                cur.execute("RELEASE SAVEPOINT nightcopy_type")
            except (psycopg2.Error, _MissingType) as exc:
                cur.execute("ROLLBACK TO SAVEPOINT nightcopy_type")
                failed_types.add(t.oid)
                message = str(exc) if isinstance(exc, _MissingType) else (
                    f"cannot create type {t.qualified} on the target: "
                    f"{pg_message(exc, detail=False)}")
                for d in type_users.get(t.oid, []):
                    failures.setdefault(d.ref.oid, message)
        for oid, message in functions.ensure_functions(cur, defs, trust or Trust(), run_id,
                                                       warn).items():
            failures.setdefault(oid, message)
        for d in defs:
            for staged_in in [d.ref.schema, *(p.schema for p in d.partitions)]:
                if staged_in in refused:
                    failures.setdefault(d.ref.oid, refused[staged_in])
            for seq in d.sequences:
                if fetch_value(cur, "SELECT pg_catalog.to_regclass(%s)",
                               (seq.qualified,)) is None:
                    cur.execute(f"CREATE SEQUENCE {seq.qualified} {seq.options_sql()}")
    conn.commit()
    return failures


def type_closure(oids: set[int], types: list[TypeDef]) -> set[int]:
    by_oid = {t.oid: t for t in types}
    out: set[int] = set()
    stack = [o for o in oids if o in by_oid]
    while stack:
        o = stack.pop()
        if o in out:
            continue
        out.add(o)
        stack.extend(d for d in by_oid[o].depends if d in by_oid)
    return out


class _MissingType(Exception):
    pass


def _ensure_type(cur: cursor, t: TypeDef, warn: Warn) -> None:
    exists = fetch_value(cur, "SELECT pg_catalog.to_regtype(%s)::oid", (t.qualified,)) is not None
    if t.kind == "A":
        return  # array types come with their element type
    if t.extension:
        if not exists:
            raise _MissingType(
                f"type {t.qualified} comes from the extension {t.extension}, which the target "
                f"does not have: run CREATE EXTENSION {quote_ident(t.extension)} on the target")
        return
    if t.kind == "e":
        if not exists:
            labels = ", ".join(_literal(cur, label) for label in t.labels or [])
            cur.execute(f"CREATE TYPE {t.qualified} AS ENUM ({labels})")
            return
        cur.execute("SELECT e.enumlabel FROM pg_catalog.pg_enum e WHERE e.enumtypid = "
                    "pg_catalog.to_regtype(%s) ORDER BY e.enumsortorder", (t.qualified,))
        have = [r[0] for r in cur.fetchall()]
        previous = None
        for label in t.labels or []:
            if label not in have:
                where = (f" AFTER {_literal(cur, previous)}" if previous is not None
                         else (f" BEFORE {_literal(cur, have[0])}" if have else ""))
                cur.execute(f"ALTER TYPE {t.qualified} ADD VALUE IF NOT EXISTS "
                            f"{_literal(cur, label)}{where}")
                warn(f"enum type {t.qualified} on the target gained the value {label!r} "
                     "(committed before the load)")
                have.append(label)
            previous = label
        return
    if exists:
        return  # an existing domain/composite/range is taken as compatible; COPY checks values
    if t.kind == "d":
        sql = f"CREATE DOMAIN {t.qualified} AS {t.base_sql}"
        if t.collation:
            sql += f" COLLATE {t.collation}"
        if t.default is not None:
            sql += f" DEFAULT {t.default}"
        if t.not_null:
            sql += " NOT NULL"
        for check in t.checks:
            sql += f" {check}"
        cur.execute(sql)
    elif t.kind == "c":
        cur.execute(f"CREATE TYPE {t.qualified} AS ({', '.join(t.attributes)})")
    elif t.kind == "r":
        opts = [f"SUBTYPE = {t.subtype_sql}"]
        if t.subtype_diff:
            opts.append(f"SUBTYPE_DIFF = {t.subtype_diff}")
        if t.multirange and cur.connection.server_version >= 140000:
            opts.append(f"MULTIRANGE_TYPE_NAME = {t.multirange}")
        cur.execute(f"CREATE TYPE {t.qualified} AS RANGE ({', '.join(opts)})")
    elif t.kind == "m":
        return  # created with its range type
    else:
        # Its input/output functions are compiled code (C, from a module): nightcopy cannot
        # copy them, and a base type belonging to no extension was created by hand.
        how = f" ({t.io_functions})" if t.io_functions else ""
        raise _MissingType(f"type {t.qualified} is a custom base type{how} that the target "
                           "lacks: install the module (or the extension) that provides it on "
                           "the target's server and create the type there first")


def _literal(cur: cursor, value: str) -> str:
    return cur.mogrify("%s", (value,)).decode()


# --------------------------------------------------------------------------- table DDL


def _column_sql(col: Column, stage: str, typed: bool = False) -> str:
    """A column's definition; in a typed table (OF type) the type comes from the composite
    type, so only its options follow the name (`name WITH OPTIONS ...`)."""
    parts = [quote_ident(col.name)] + (["WITH OPTIONS"] if typed else [col.type_sql])
    if col.collation and not typed:
        parts.append(f"COLLATE {col.collation}")
    if col.identity:
        how = "ALWAYS" if col.identity == "a" else "BY DEFAULT"
        seq = col.identity_seq
        opts = ""
        if seq is not None:
            opts = (f" (SEQUENCE NAME {qualified_name(stage, seq.name)} "
                    f"{seq.options_sql(with_type=False)})")
        parts.append(f"GENERATED {how} AS IDENTITY{opts}")
    elif col.generated:
        kind = "STORED" if col.generated == "s" else "VIRTUAL"
        parts.append(f"GENERATED ALWAYS AS ({col.default}) {kind}")
    elif col.default is not None:
        parts.append(f"DEFAULT {col.default}")
    if col.not_null:
        parts.append("NOT NULL")
    return " ".join(parts)


def _typed_column_needs_options(col: Column) -> bool:
    return bool(col.identity or col.generated or col.default is not None or col.not_null)


def _loads_valid(k: Constraint) -> bool:
    """A check created inline in CREATE TABLE is marked valid whatever its NOT VALID says, and
    COPY would then reject the source's rows that break it: a NOT VALID one is added after the
    load instead (ALTER TABLE ... ADD ... NOT VALID skips the existing rows)."""
    return k.kind == "c" and k.validated


def create_table_sql(d: TableDef, without_compression: frozenset[str] = frozenset()) -> list[str]:
    """CREATE TABLE (+ partitions) in the staging schemas, valid checks inline, no indexes yet."""
    stage = stage_schema(d.ref.schema)
    typed = d.of_type is not None
    # A child of a hierarchy copied with it lists only its local columns (attislocal) and
    # local checks (the constraints reader reads only those); the others come from INHERITS.
    inherited = d.inherited_only_columns if d.hierarchy_parents else set()
    elements = [_column_sql(_own_not_null(d, c), stage, typed) for c in d.columns
                if c.name not in inherited and (not typed or _typed_column_needs_options(c))]
    elements += [f"CONSTRAINT {quote_ident(k.name)} {k.definition}"
                 for k in d.constraints if _loads_valid(k)]
    table = staged(d.ref.schema, d.ref.name)
    sql = f"CREATE {'UNLOGGED ' if d.unlogged else ''}TABLE {table}"
    if typed:
        sql += f" OF {d.of_type}" + (f" ({', '.join(elements)})" if elements else "")
    else:
        sql += f" ({', '.join(elements)})"
    if d.hierarchy_parents:
        sql += f" INHERITS ({', '.join(staged(p.ref.schema, p.ref.name) for p in d.hierarchy_parents)})"
    if d.partkey:
        sql += f" PARTITION BY {d.partkey}"
    if d.access_method:
        sql += f" USING {quote_ident(d.access_method)}"
    if d.reloptions and not d.partkey:
        sql += f" WITH ({', '.join(d.reloptions)})"
    statements = [sql, *_inherited_column_changes(d)]
    names = {d.ref.oid: table}
    for p in d.partitions:
        names[p.oid] = staged(p.schema, p.name)
        psql = f"CREATE TABLE {names[p.oid]} PARTITION OF {names[p.parent_oid]}"
        checks = [f"CONSTRAINT {quote_ident(k.name)} {k.definition}"
                  for k in p.constraints if _loads_valid(k)]
        if checks:
            psql += f" ({', '.join(checks)})"
        psql += f" {p.bound}"
        if p.partkey:
            psql += f" PARTITION BY {p.partkey}"
        if p.access_method:
            psql += f" USING {quote_ident(p.access_method)}"
        if p.reloptions and not p.partkey:
            psql += f" WITH ({', '.join(p.reloptions)})"
        statements.append(psql)
    # After the partitions: on a partitioned table these recurse to them, as on the source.
    statements += table_details_ddl.column_storage_sql(table, d.columns, set(without_compression))
    if d.row_security:
        # Enabled, never forced here: the owner (the worker) must still load and verify the
        # rows; FORCE comes last (TableLoad.finish). Policies are not copied: readers other
        # than the owner see no rows until the target has policies of its own (README).
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    return statements


def self_reference_path(d: TableDef) -> str | None:
    """The search path a table naming itself is created under (source_catalog/self_references):
    its staging schema first, so that its own name is the staged table, then its schema, where
    every other unqualified name of its definitions was on the source. None: ''."""
    if not d.names_itself:
        return None
    schemas = list(dict.fromkeys([d.ref.schema, *(p.schema for p in d.partitions)]))
    return ", ".join([quote_ident(stage_schema(s)) for s in schemas]
                     + [quote_ident(s) for s in schemas])


def _own_not_null(d: TableDef, col: Column) -> Column:
    """A local column of a child that a parent's NOT NULL column also defines inherits the
    NOT NULL: it is declared again only where the source's child declares it too. (And one
    whose generation it takes from its parents is declared plain: table_units.)"""
    if col.name in d.generation_from_parents:
        col = replace(col, generated="", default=None)
    if (not d.hierarchy_parents or not col.not_null or col.name in d.local_not_null_columns
            or not any((pc := p.column(col.name)) is not None and pc.not_null
                       for p in d.hierarchy_parents)):
        return col
    return replace(col, not_null=False)


def _inherited_column_changes(d: TableDef) -> list[str]:
    """Where an inherited-only column of a child differs from what INHERITS gives it (its
    own default, or NOT NULL the parents lack): ALTER it, as pg_dump does."""
    if not d.hierarchy_parents:
        return []
    table = staged(d.ref.schema, d.ref.name)
    out = []
    for c in d.columns:
        if c.name not in d.inherited_only_columns or c.generated or c.identity:
            continue
        from_parent = next((pc for p in d.hierarchy_parents
                            if (pc := p.column(c.name)) is not None), None)
        if from_parent is None:
            continue
        column = f"ALTER TABLE {table} ALTER COLUMN {quote_ident(c.name)}"
        if c.default != from_parent.default:
            out.append(f"{column} DROP DEFAULT" if c.default is None
                       else f"{column} SET DEFAULT {c.default}")
        if c.not_null and not from_parent.not_null:
            out.append(f"{column} SET NOT NULL")
    return out


def index_sql(index: IndexDef, table: str) -> str:
    unique = "UNIQUE " if index.unique else ""
    return f"CREATE {unique}INDEX {quote_ident(index.name)} ON {table} USING {index.body}"


def post_load_sql(d: TableDef) -> list[str]:
    """Keys, exclusion constraints and indexes, built after the load (one pass each), then the
    NOT VALID checks (they must not judge the source's rows), REPLICA IDENTITY and CLUSTER ON."""
    table = staged(d.ref.schema, d.ref.name)
    out = [f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(k.name)} {k.definition}"
           for k in d.constraints if k.kind in ("p", "u", "x")]
    out += [index_sql(i, table) for i in d.indexes]
    for p in d.partitions:
        ptable = staged(p.schema, p.name)
        out += [f"ALTER TABLE {ptable} ADD CONSTRAINT {quote_ident(k.name)} {k.definition}"
                for k in p.constraints if k.kind in ("p", "u", "x")]
        out += [index_sql(i, ptable) for i in p.indexes]
    out += table_details_ddl.not_valid_checks_sql(d, staged)
    out += table_details_ddl.index_roles_sql(d, table)
    return out


def comments_sql(d: TableDef, schema_of: Callable[[str], str], literal: Callable[[str], str]
                 ) -> list[str]:
    """COMMENT statements for the table, its columns, constraints and indexes.

    schema_of maps a source schema to where the objects are now (staging or final)."""
    table = qualified_name(schema_of(d.ref.schema), d.ref.name)
    out = []
    if d.comment is not None:
        out.append(f"COMMENT ON TABLE {table} IS {literal(d.comment)}")
    for c in d.columns:
        if c.comment is not None:
            out.append(f"COMMENT ON COLUMN {table}.{quote_ident(c.name)} IS {literal(c.comment)}")
    for k in d.constraints:
        if k.comment is not None and k.kind != "f":
            out.append(f"COMMENT ON CONSTRAINT {quote_ident(k.name)} ON {table} "
                       f"IS {literal(k.comment)}")
    for i in d.indexes:
        if i.comment is not None:
            out.append(f"COMMENT ON INDEX {qualified_name(schema_of(d.ref.schema), i.name)} "
                       f"IS {literal(i.comment)}")
    return out


def set_sequence_value(cur: cursor, seq: SequenceDef, target_name: str) -> None:
    """The target's sequence as the source's: its options (type, increment, bounds, start,
    cache, cycle) where they differ, and exactly its state (last_value and is_called).

    The name goes in as a parameter (the driver quotes it), never spliced into a literal."""
    cur.execute("""
        SELECT pg_catalog.format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin,
               q.seqmax, q.seqcache, q.seqcycle, pg_catalog.pg_has_role(c.relowner, 'USAGE')
          FROM pg_catalog.pg_sequence q JOIN pg_catalog.pg_class c ON c.oid = q.seqrelid
         WHERE q.seqrelid = %s::pg_catalog.regclass""", (target_name,))
    row = cur.fetchone()
    wanted = (seq.type_sql, seq.start, seq.increment, seq.minvalue, seq.maxvalue, seq.cache,
              seq.cycle)
    if row is not None and tuple(row[:7]) != wanted:
        if not row[7]:
            raise TableError(
                f"sequence {seq.qualified} on the target differs from the source's "
                f"({seq.options_sql()} there) and the worker's role does not own it: alter it "
                "on the target to match, or give the worker's role its ownership")
        # RESTART WITH the source's value: the new bounds are checked against it, not against
        # the target's old value (which may lie outside them).
        sequence = fetch_value(cur, "SELECT %s::pg_catalog.regclass::text", (target_name,))
        cur.execute(f"ALTER SEQUENCE {sequence} {seq.options_sql()} "
                    f"RESTART WITH {seq.last_value}")
    cur.execute("SELECT pg_catalog.setval(%s::pg_catalog.regclass, %s, %s)",
                (target_name, seq.last_value, seq.is_called))


def sequence_behind(seq: SequenceDef, extreme: int | None) -> bool:
    """Whether the next value the sequence hands out is already in the column (whose max, or
    min for a descending sequence, is `extreme`)."""
    if extreme is None:
        return False
    following = seq.last_value + seq.increment if seq.is_called else seq.last_value
    return following <= extreme if seq.increment > 0 else following >= extreme
