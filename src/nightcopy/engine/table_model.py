"""The table model: what nightcopy knows of a source table, read once from the source catalog
(source_catalog/) and turned into DDL on the target (target_ddl). Plain data, no queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nightcopy.engine.sql_names import qualified_name

# pg_class.relkind -> how messages name a relation that is not a table.
KIND_NAMES = {"v": "a view", "m": "a materialized view", "f": "a foreign table",
              "S": "a sequence", "c": "a composite type", "i": "an index", "I": "an index"}

Grant = tuple[str, str]  # (grantee role name or 'PUBLIC', privilege)


@dataclass(frozen=True)
class TableRef:
    oid: int
    schema: str
    name: str
    kind: str  # r = ordinary, p = partitioned
    qualified: str  # format('%I.%I')
    size_bytes: int = 0


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
    last_value: int  # with is_called: exactly the source's state, as setval() takes it
    owner_table_oid: int | None = None
    owner_column: str | None = None
    is_called: bool = True  # False: setval(..., last_value, false), nextval returns last_value

    def options_sql(self, with_type: bool = True) -> str:
        """CREATE/ALTER SEQUENCE options; an identity column's sequence takes the column's
        type (naming it again is refused as redundant), hence with_type=False there."""
        return ((f"AS {self.type_sql} " if with_type else "")
                + f"INCREMENT BY {self.increment} MINVALUE {self.minvalue} "
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
    acl: list[Grant] = field(default_factory=list)
    storage: str | None = None  # SET STORAGE value where it differs from the type's default
    compression: str | None = None  # SET COMPRESSION value ('pglz', 'lz4') where one was set
    statistics: int | None = None  # SET STATISTICS target where one was set
    attoptions: list[str] = field(default_factory=list)  # SET (n_distinct=...)
    default_seq: SequenceDef | None = None  # the sequence its default (nextval) names


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
    comment: str | None = None


def index_body(indexdef: str, quoted_name: str, table: str, unique: bool) -> str:
    """The part of pg_get_indexdef() after 'USING ', found by its exact known prefix."""
    head = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted_name} ON "
    for only in ("ONLY ", ""):
        prefix = f"{head}{only}{table} USING "
        if indexdef.startswith(prefix):
            return indexdef[len(prefix):]
    raise ValueError(f"unexpected index definition: {indexdef}")


@dataclass(frozen=True)
class ExpressionCall:
    """A function, operator or operator class that an expression evaluated while loading calls,
    and is not a built-in immutable one (source_catalog/expression_calls; checked by trust)."""

    what: str  # the definition that calls it: "the constraint ok of app.orders"
    kind: str  # function | operator | operator class
    signature: str  # schema.name(argument types), all schema-qualified: looked up on the target
    schema: str
    name: str
    extension: str | None  # the extension it belongs to (pg_depend deptype 'e'), if any


@dataclass(frozen=True)
class ExtensionDef:
    """An extension a table's definition needs (source_catalog/extensions), as on the source."""

    name: str
    version: str
    schema: str
    requires: tuple[str, ...] = ()  # the extensions it requires (created before it)


@dataclass(frozen=True)
class FunctionDef:
    """A user function a table's definition names (a trusted CHECK / index / generated-column
    call, or any default's), as on the source (source_catalog/functions)."""

    what: str  # the definition naming it, for messages: "the default of the column c of app.t"
    signature: str  # schema.name(argument types), as ExpressionCall.signature
    schema: str
    name: str
    language: str
    security_definer: bool
    kind: str  # f function, p procedure, a aggregate, w window
    definition: str | None  # pg_get_functiondef() on the source (plain functions only)
    in_default_only: bool  # named only by a default: not run while loading
    row_type_of: str | None = None  # a table whose row type it takes or returns


@dataclass(frozen=True)
class CollationDef:
    """A user-created collation a table needs (source_catalog/collations), as on the source."""

    oid: int
    schema: str
    name: str
    qualified: str
    provider: str  # c (libc), i (icu), b (builtin), d (default)
    deterministic: bool
    lc_collate: str | None
    lc_ctype: str | None
    locale: str | None  # icu / builtin locale
    icu_rules: str | None
    extension: str | None  # created by an extension: the extension brings it


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
    # Its own storage, as a plain table's (source_catalog/partitions): reloptions with its
    # TOAST table's as toast.*, and a table access method other than heap (leaves only).
    reloptions: list[str] = field(default_factory=list)
    access_method: str | None = None

    @property
    def qualified(self) -> str:
        return qualified_name(self.schema, self.name)

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
    acl: list[Grant] = field(default_factory=list)
    unlogged: bool = False
    reloptions: list[str] = field(default_factory=list)
    sequences: list[SequenceDef] = field(default_factory=list)  # named in column defaults
    type_oids: set[int] = field(default_factory=set)
    # Plain inheritance (INHERITS, not partitioning), read by source_catalog/inheritance.
    inherits_from: list[str] = field(default_factory=list)  # the source's parents, in order
    parent_oids: list[int] = field(default_factory=list)  # the same parents' oids
    inheritance_children: list[str] = field(default_factory=list)  # qualified, on the source
    inherited_only_columns: set[str] = field(default_factory=set)  # NOT attislocal
    # Inherited columns whose NOT NULL the table also declares itself (PostgreSQL 18's
    # pg_constraint conislocal; older servers do not record it: taken as inherited only).
    local_not_null_columns: set[str] = field(default_factory=set)
    # Set by table_units when the table's parents are all copied with it: created INHERITS
    # them (staged), with only its local columns. On a hierarchy's first table, `hierarchy`
    # holds the hierarchy's other tables, parents before children: one unit, one transaction.
    hierarchy_parents: list[TableDef] = field(default_factory=list)
    hierarchy: list[TableDef] = field(default_factory=list)
    # Its local generated columns whose expression the child takes from its parents on this
    # target (PostgreSQL < 16 refuses a child's own): declared without GENERATED.
    generation_from_parents: set[str] = field(default_factory=set)
    binary: bool = True
    text_reason: str | None = None
    expression_calls: list[ExpressionCall] = field(default_factory=list)
    access_method: str | None = None  # USING am, when not heap (source_catalog/table_storage)
    row_security: bool = False  # ENABLE ROW LEVEL SECURITY
    force_row_security: bool = False  # FORCE ROW LEVEL SECURITY
    replica_identity: str = "d"  # pg_class.relreplident: d n f i
    replica_index: str | None = None  # REPLICA IDENTITY USING INDEX (indisreplident)
    cluster_index: str | None = None  # CLUSTER ON (indisclustered)
    of_type: str | None = None  # CREATE TABLE ... OF type (typed tables)
    extensions: list[ExtensionDef] = field(default_factory=list)  # what the definition needs
    collations: list[CollationDef] = field(default_factory=list)  # user collations it uses
    functions: list[FunctionDef] = field(default_factory=list)  # user functions it names
    # A default, generated column or CHECK names the table's own regclass: its DDL is created
    # with the staging schema on the search path (source_catalog/self_references).
    names_itself: bool = False
    # Excluded or masked columns (engine/column_masks): the source's definition this one was
    # made from (what the schema-drift report compares), and the keys and indexes left out.
    masked_from: TableDef | None = None
    masked_out: list[str] = field(default_factory=list)
    # Foreign keys of other tables into this one's excluded or masked columns, by (their
    # table's oid, key name) -> why they are not created (engine/column_masks).
    keys_into_left_out: dict[tuple[int, str], str] = field(default_factory=dict)

    @property
    def copy_columns(self) -> list[Column]:
        """Columns that go through COPY: generated columns are computed by the target."""
        return [c for c in self.columns if not c.generated]

    @property
    def unit(self) -> list[TableDef]:
        """The tables copied in this table's transaction: itself and its hierarchy."""
        return [self, *self.hierarchy]

    @property
    def leaves(self) -> list[PartitionDef]:
        return [p for p in self.partitions if p.is_leaf]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


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
    io_functions: str | None = None  # a base type: what its input function is, for messages
