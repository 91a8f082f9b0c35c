"""Reading the source catalog: which tables a list means, and each table's full definition.

Everything is read in a few bulk queries on the snapshot connection (not per table), so that
hundreds of small tables cost a handful of round trips. The session runs with search_path=''
so pg_get_*def() and format_type() return schema-qualified text that is valid on the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg2.extensions import connection

from nightcopy.engine.ledger import LEDGER_SCHEMA
from nightcopy.engine.tablelist import TableSpec
from nightcopy.errors import ConfigError

STAGE_PREFIX = "nightcopy_stage_"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
FIRST_USER_OID = 16384
# reg* types carry OIDs that differ between databases: their binary form is not portable.
REG_TYPES = {"regclass", "regtype", "regproc", "regprocedure", "regoper", "regoperator",
             "regconfig", "regdictionary", "regnamespace", "regrole", "regcollation"}


def is_internal_schema(schema: str) -> bool:
    return (schema in SYSTEM_SCHEMAS or schema == LEDGER_SCHEMA or schema.startswith("pg_temp")
            or schema.startswith("pg_toast") or schema.startswith(STAGE_PREFIX))


@dataclass(frozen=True)
class TableRef:
    oid: int
    schema: str
    name: str
    kind: str  # r = ordinary, p = partitioned
    qualified: str  # format('%I.%I')
    size_bytes: int = 0


_KIND_NAMES = {"v": "a view", "m": "a materialized view", "f": "a foreign table",
               "S": "a sequence", "c": "a composite type"}


def resolve_tables(conn: connection, specs: list[TableSpec]) -> list[TableRef]:
    """Expand names and globs against the source; errors name the problem and the fix."""
    with conn.cursor() as cur:
        cur.execute("""
            SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition,
                   format('%%I.%%I', n.nspname, c.relname),
                   EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e'),
                   pg_catalog.pg_total_relation_size(c.oid),
                   (SELECT format('%%I.%%I', pn.nspname, p.relname)
                      FROM pg_catalog.pg_inherits i
                      JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                      JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                     WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1)
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname !~ '^pg_(toast|temp)'""", ())
        rows = cur.fetchall()
    by_name = {(r[1], r[2]): r for r in rows}
    chosen: dict[int, TableRef] = {}
    for spec in specs:
        if not spec.is_glob:
            row = by_name.get((spec.schema, spec.name))
            qualified = _quote_pair(spec.schema, spec.name)
            if row is None:
                hint = _near_miss(spec, by_name)
                raise ConfigError(f"table {qualified} does not exist on the source{hint}; "
                                  "check the table list")
            oid, schema, name, kind, is_partition, q, ext_owned, size, parent = row
            if is_internal_schema(schema):
                raise ConfigError(f"{q} belongs to nightcopy's own schema and is never copied")
            if kind in _KIND_NAMES:
                raise ConfigError(f"{q} is {_KIND_NAMES[kind]} on the source, not a table; "
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
    return sorted(chosen.values(), key=lambda t: (t.schema, t.name))


def _quote_pair(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def quote_ident(name: str) -> str:
    """Quote like PostgreSQL's quote_ident (%I): only when needed."""
    import re

    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


# Keywords that quote_ident() quotes (reserved and type/function-name keywords).
_RESERVED = set(["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character", "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create", "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having", "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is", "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object", "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value", "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp", "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing", "position", "precision", "primary", "real", "references", "returning", "right", "row", "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric", "system_user", "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable"])


def _near_miss(spec: TableSpec, by_name: dict) -> str:
    for schema, name in by_name:
        if schema.lower() == spec.schema.lower() and name.lower() == spec.name.lower():
            return (f" (did you mean {_quote_pair(schema, name)}? names with capitals need "
                    "double quotes)")
    return ""


# --------------------------------------------------------------------------- definitions


@dataclass
class SequenceDef:
    oid: int
    qualified: str
    schema: str
    name: str
    type_sql: str
    start: int
    increment: int
    minvalue: int
    maxvalue: int
    cache: int
    cycle: bool
    last_value: int | None  # None: never called (setval(..., start, false))
    owner_table_oid: int | None = None
    owner_column: str | None = None

    def options_sql(self) -> str:
        return (f"AS {self.type_sql} INCREMENT BY {self.increment} MINVALUE {self.minvalue} "
                f"MAXVALUE {self.maxvalue} START WITH {self.start} CACHE {self.cache} "
                + ("CYCLE" if self.cycle else "NO CYCLE"))


@dataclass
class Column:
    name: str
    type_sql: str
    type_oid: int
    not_null: bool
    default: str | None
    identity: str  # '' | 'a' (always) | 'd' (by default)
    generated: str  # '' | 's' (stored) | 'v' (virtual)
    collation: str | None
    comment: str | None
    identity_seq: SequenceDef | None = None
    acl: list[tuple[str, str]] = field(default_factory=list)  # (grantee, privilege)


@dataclass
class Constraint:
    name: str
    kind: str  # p u c x f
    definition: str
    comment: str | None
    validated: bool
    ref_table_oid: int | None  # FK target


@dataclass
class IndexDef:
    name: str
    unique: bool
    body: str  # everything after USING
    comment: str | None


@dataclass
class PartitionDef:
    oid: int
    schema: str
    name: str
    parent_oid: int
    bound: str
    partkey: str | None  # set when the partition is itself partitioned
    indexes: list[IndexDef] = field(default_factory=list)  # local (not inherited) ones
    constraints: list[Constraint] = field(default_factory=list)  # local checks

    @property
    def qualified(self) -> str:
        return _quote_pair(self.schema, self.name)

    @property
    def is_leaf(self) -> bool:
        return self.partkey is None


@dataclass
class TableDef:
    ref: TableRef
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[IndexDef] = field(default_factory=list)
    partkey: str | None = None
    partitions: list[PartitionDef] = field(default_factory=list)  # parents before children
    comment: str | None = None
    acl: list[tuple[str, str]] = field(default_factory=list)
    unlogged: bool = False
    reloptions: list[str] = field(default_factory=list)
    sequences: list[SequenceDef] = field(default_factory=list)  # named in column defaults
    type_oids: set[int] = field(default_factory=set)
    inherits_from: list[str] = field(default_factory=list)  # plain inheritance (not reproduced)
    binary: bool = True
    text_reason: str | None = None

    @property
    def copy_columns(self) -> list[Column]:
        """Columns that go through COPY: generated columns are computed by the target."""
        return [c for c in self.columns if not c.generated]

    @property
    def leaves(self) -> list[PartitionDef]:
        return [p for p in self.partitions if p.is_leaf]


def _fetch(conn: connection, sql: str, params: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def load_definitions(conn: connection, tables: list[TableRef]) -> dict[int, TableDef]:
    """Read the full definition of every table (and its partitions) in bulk."""
    defs = {t.oid: TableDef(ref=t) for t in tables}
    if not defs:
        return defs
    oids = list(defs)
    # Partition trees (all levels), parents before children.
    parts = _fetch(conn, """
        WITH RECURSIVE tree AS (
            SELECT i.inhrelid AS oid, i.inhparent AS parent, i.inhparent AS root, 1 AS depth
              FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY(%s::oid[])
            UNION ALL
            SELECT i.inhrelid, i.inhparent, t.root, t.depth + 1
              FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid)
        SELECT t.root, t.oid, n.nspname, c.relname, t.parent,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid),
               CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
               c.relispartition
          FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         ORDER BY t.root, t.depth, n.nspname, c.relname""", (oids,))
    part_owner: dict[int, TableDef] = {}
    partitions: dict[int, PartitionDef] = {}
    for root, oid, schema, name, parent, bound, partkey, is_partition in parts:
        d = defs[root]
        if not is_partition:
            # Plain inheritance child: COPY of the parent copies only the parent's own rows.
            continue
        p = PartitionDef(oid, schema, name, parent, bound, partkey)
        d.partitions.append(p)
        part_owner[oid] = d
        partitions[oid] = p
    all_oids = oids + list(partitions)

    for oid, partkey, comment, persistence, reloptions in _fetch(conn, """
        SELECT c.oid, CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
               pg_catalog.obj_description(c.oid, 'pg_class'), c.relpersistence,
               c.reloptions
          FROM pg_catalog.pg_class c WHERE c.oid = ANY(%s::oid[])""", (oids,)):
        d = defs[oid]
        d.partkey, d.comment = partkey, comment
        d.unlogged = persistence == "u"
        d.reloptions = list(reloptions or [])

    for child, parent in _fetch(conn, """
        SELECT i.inhrelid, format('%%I.%%I', n.nspname, p.relname)
          FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
          JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhrelid = ANY(%s::oid[]) AND NOT c.relispartition""", (oids,)):
        defs[child].inherits_from.append(parent)

    for (relid, attname, type_sql, type_oid, notnull, default, identity, generated, collation,
         comment) in _fetch(conn, """
        SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid,
               a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity,
               a.attgenerated,
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                    format('%%I.%%I', cn.nspname, co.collname) END,
               pg_catalog.col_description(a.attrelid, a.attnum)
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum""", (oids,)):
        d = defs[relid]
        d.columns.append(Column(attname, type_sql, type_oid, notnull, default, identity,
                                generated, collation, comment))
        d.type_oids.add(type_oid)
    # Table and column privileges (grantee names; PUBLIC as 'PUBLIC'); owner's own rights skipped.
    for oid, attname, grantee, privilege in _fetch(conn, """
        SELECT c.oid, NULL::text, COALESCE(r.rolname, 'PUBLIC'), a.privilege_type
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = ANY(%s::oid[]) AND a.grantee <> c.relowner
        UNION ALL
        SELECT c.oid, att.attname, COALESCE(r.rolname, 'PUBLIC'), a.privilege_type
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0
                                           AND NOT att.attisdropped AND att.attacl IS NOT NULL,
               pg_catalog.aclexplode(att.attacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = ANY(%s::oid[]) AND a.grantee <> c.relowner""", (oids, oids)):
        d = defs[oid]
        if attname is None:
            d.acl.append((grantee, privilege))
        else:
            for col in d.columns:
                if col.name == attname:
                    col.acl.append((grantee, privilege))


    seq_sql = """
        SELECT s.oid, format('%%I.%%I', n.nspname, s.relname), n.nspname, s.relname,
               pg_catalog.format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin,
               q.seqmax, q.seqcache, q.seqcycle, pg_catalog.pg_sequence_last_value(s.oid),
               od.refobjid, oa.attname
          FROM pg_catalog.pg_class s
          JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
          JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
          LEFT JOIN pg_catalog.pg_depend od
                 ON od.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND od.objid = s.oid
                AND od.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND od.deptype IN ('a', 'i')
          LEFT JOIN pg_catalog.pg_attribute oa ON oa.attrelid = od.refobjid
                AND oa.attnum = od.refobjsubid
         WHERE s.oid = ANY(%s::oid[])"""

    def _seq(row) -> SequenceDef:
        return SequenceDef(*row[:12], owner_table_oid=row[12], owner_column=row[13])

    # Identity sequences (internal to their table).
    ident = _fetch(conn, """
        SELECT d.refobjid, a.attname, d.objid
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.deptype = 'i' AND d.refobjid = ANY(%s::oid[]) AND a.attidentity <> ''
        """, (oids,))
    if ident:
        seqs = {r[0]: _seq(r) for r in _fetch(conn, seq_sql, ([r[2] for r in ident],))}
        for relid, attname, seqoid in ident:
            for col in defs[relid].columns:
                if col.name == attname:
                    col.identity_seq = seqs[seqoid]
    # Sequences named in column defaults (serial columns, or shared sequences).
    used = _fetch(conn, """
        SELECT DISTINCT ad.adrelid, d.refobjid
          FROM pg_catalog.pg_attrdef ad
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
         WHERE ad.adrelid = ANY(%s::oid[])""", (oids,))
    if used:
        seqs = {r[0]: _seq(r) for r in _fetch(conn, seq_sql, (list({r[1] for r in used}),))}
        for relid, seqoid in used:
            defs[relid].sequences.append(seqs[seqoid])

    # Constraints (not NOT NULL ones, not those inherited from a partitioned parent).
    for relid, name, kind, definition, comment, validated, ref in _fetch(conn, """
        SELECT k.conrelid, k.conname, k.contype, pg_catalog.pg_get_constraintdef(k.oid),
               pg_catalog.obj_description(k.oid, 'pg_constraint'), k.convalidated,
               NULLIF(k.confrelid, 0)
          FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = ANY(%s::oid[]) AND k.contype IN ('p', 'u', 'c', 'x', 'f')
           AND k.conislocal AND k.conparentid = 0
         ORDER BY k.conrelid, k.contype, k.conname""", (all_oids,)):
        c = Constraint(name, kind, definition, comment, validated, ref)
        if relid in defs:
            defs[relid].constraints.append(c)
        elif kind in ("c", "p", "u", "x"):
            partitions[relid].constraints.append(c)

    # Indexes that no constraint owns and that are not inherited from a partitioned index.
    for relid, iname, idef, prefix_name, tbl, unique, comment in _fetch(conn, """
        SELECT i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid),
               pg_catalog.quote_ident(ic.relname), format('%%I.%%I', n.nspname, c.relname),
               i.indisunique, pg_catalog.obj_description(i.indexrelid, 'pg_class')
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = ANY(%s::oid[])
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                            WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                              AND k.contype IN ('p', 'u', 'x'))
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
         ORDER BY i.indrelid, ic.relname""", (all_oids,)):
        body = _index_body(idef, prefix_name, tbl, unique)
        index = IndexDef(iname, unique, body, comment)
        if relid in defs:
            defs[relid].indexes.append(index)
        else:
            partitions[relid].indexes.append(index)

    _decide_formats(conn, defs)
    return defs


def _index_body(indexdef: str, quoted_name: str, table: str, unique: bool) -> str:
    """The part of pg_get_indexdef() after 'USING ', found by its exact known prefix."""
    head = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted_name} ON "
    for only in ("ONLY ", ""):
        prefix = f"{head}{only}{table} USING "
        if indexdef.startswith(prefix):
            return indexdef[len(prefix):]
    raise ValueError(f"unexpected index definition: {indexdef}")


def _decide_formats(conn: connection, defs: dict[int, TableDef]) -> None:
    """Binary COPY where it is portable; text for columns whose binary form carries OIDs."""
    type_oids = {c.type_oid for d in defs.values() for c in d.columns}
    if not type_oids:
        return
    info: dict[int, tuple] = {}
    pending = set(type_oids)
    while pending:
        rows = _fetch(conn, """
            SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype, t.typcategory,
                   t.typsend <> 0 AND t.typreceive <> 0, n.nspname
              FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = ANY(%s::oid[])""", (list(pending),))
        pending = set()
        for row in rows:
            info[row[0]] = row
            for ref in (row[3], row[4]):
                if ref and ref not in info:
                    pending.add(ref)

    def portable(oid: int) -> tuple[bool, str]:
        oid_, name, typtype, elem, base, category, has_binary, schema = info[oid]
        if typtype == "d":
            return portable(base)
        if not has_binary:
            return False, f"type {name} has no binary I/O"
        if name in REG_TYPES:
            return False, f"type {name} holds OIDs"
        if typtype == "e":
            return True, ""  # enums travel as their label
        if category == "A" and elem:
            elem_info = info[elem]
            if elem_info[2] == "d" or elem >= FIRST_USER_OID or elem_info[2] in ("c", "e"):
                return False, f"array type {name} carries its element type's OID"
            return portable(elem)
        if typtype == "c":
            return False, f"composite type {name} carries OIDs"
        if oid >= FIRST_USER_OID:
            return False, f"type {schema}.{name} is not built in"
        return True, ""

    for d in defs.values():
        for col in d.copy_columns:
            ok, why = portable(col.type_oid)
            if not ok:
                d.binary, d.text_reason = False, f"column {col.name}: {why}"
                break


def check_readable(conn: connection, defs: dict[int, TableDef]) -> None:
    """Refuse, before anything is written, tables the source role cannot read in full.

    COPY reads partitions directly, so each partition needs SELECT too; and with row-level
    security on, the copy runs with row_security=off, which only the owner or a BYPASSRLS role
    may do."""
    oids = [o for d in defs.values() for o in [d.ref.oid, *(p.oid for p in d.partitions)]]
    if not oids:
        return
    rows = _fetch(conn, """
        SELECT format('%%I.%%I', n.nspname, c.relname),
               pg_catalog.has_table_privilege(c.oid, 'SELECT'),
               c.relrowsecurity AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')
                 AND NOT (SELECT r.rolbypassrls FROM pg_catalog.pg_roles r
                           WHERE r.rolname = current_user)
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) ORDER BY 1""", (oids,))
    no_select = [r[0] for r in rows if not r[1]]
    if no_select:
        shown = ", ".join(no_select[:5]) + (f" and {len(no_select) - 5} more"
                                            if len(no_select) > 5 else "")
        raise ConfigError(f"the source role may not read {shown}: GRANT SELECT ON "
                          f"{no_select[0]} (and the others) TO it, partitions included")
    hidden = [r[0] for r in rows if r[2]]
    if hidden:
        raise ConfigError(f"row-level security would hide rows of {', '.join(hidden[:5])} from "
                          "the source role: copy as the tables' owner or a role with BYPASSRLS")


# --------------------------------------------------------------------------- types


@dataclass
class TypeDef:
    oid: int
    schema: str
    name: str
    qualified: str
    kind: str  # e enum, d domain, c composite, r range, b base, m multirange, A array
    extension: str | None
    labels: list[str] | None = None
    base_sql: str | None = None  # domain base
    not_null: bool = False
    default: str | None = None
    checks: list[str] = field(default_factory=list)
    collation: str | None = None
    attributes: list[str] = field(default_factory=list)  # composite: "name type"
    subtype_sql: str | None = None
    subtype_diff: str | None = None
    multirange: str | None = None
    depends: list[int] = field(default_factory=list)


def load_types(conn: connection, type_oids: set[int]) -> list[TypeDef]:
    """User-defined types the columns need (and the types those need), dependencies first."""
    found: dict[int, TypeDef] = {}
    pending = {o for o in type_oids if o >= FIRST_USER_OID}
    while pending:
        rows = _fetch(conn, """
            SELECT t.oid, n.nspname, t.typname, format('%%I.%%I', n.nspname, t.typname),
                   CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN 'A' ELSE t.typtype::text END,
                   (SELECT e.extname FROM pg_catalog.pg_depend d
                      JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                     WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                       AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1),
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                      FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
                   CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
                   t.typnotnull, t.typdefault,
                   (SELECT array_agg(format('CONSTRAINT %%I %%s', k.conname,
                                            pg_catalog.pg_get_constraintdef(k.oid)) ORDER BY k.conname)
                      FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'),
                   (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_catalog.pg_collation co
                      JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                     WHERE t.typtype = 'd' AND co.oid = t.typcollation
                       AND t.typcollation <> (SELECT b.typcollation FROM pg_catalog.pg_type b
                                               WHERE b.oid = t.typbasetype)),
                   (SELECT array_agg(format('%%I %%s', a.attname,
                                            pg_catalog.format_type(a.atttypid, a.atttypmod))
                                     ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute a
                     WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0
                       AND NOT a.attisdropped),
                   (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
                     WHERE r.rngtypid = t.oid),
                   (SELECT NULLIF(r.rngsubdiff::text, '-') FROM pg_catalog.pg_range r
                     WHERE r.rngtypid = t.oid),
                   (SELECT pg_catalog.format_type((to_jsonb(r) ->> 'rngmultitypid')::oid, NULL)
                      FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
                   array_remove(ARRAY[NULLIF(t.typelem, 0), NULLIF(t.typbasetype, 0),
                                      (SELECT r.rngsubtype FROM pg_catalog.pg_range r
                                        WHERE r.rngtypid = t.oid)]
                                || COALESCE((SELECT array_agg(a.atttypid) FROM pg_catalog.pg_attribute a
                                              WHERE t.typtype = 'c' AND a.attrelid = t.typrelid
                                                AND a.attnum > 0 AND NOT a.attisdropped),
                                            '{}'::oid[]), NULL)
              FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = ANY(%s::oid[])""", (list(pending),))
        pending = set()
        for r in rows:
            td = TypeDef(oid=r[0], schema=r[1], name=r[2], qualified=r[3], kind=r[4],
                         extension=r[5], labels=r[6], base_sql=r[7], not_null=r[8], default=r[9],
                         checks=list(r[10] or []), collation=r[11], attributes=list(r[12] or []),
                         subtype_sql=r[13], subtype_diff=r[14], multirange=r[15],
                         depends=[int(o) for o in r[16] if int(o) >= FIRST_USER_OID])
            found[td.oid] = td
            pending.update(o for o in td.depends if o not in found)
    ordered: list[TypeDef] = []
    seen: set[int] = set()

    def visit(oid: int) -> None:
        if oid in seen or oid not in found:
            return
        seen.add(oid)
        for dep in found[oid].depends:
            visit(dep)
        ordered.append(found[oid])

    for oid in sorted(found):
        visit(oid)
    return ordered
