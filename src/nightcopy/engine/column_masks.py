"""Columns that must not leave the operational database (issue 17): per table, in the object
form of a table-list entry, `exclude_columns` (absent on the target) and `mask` (column ->
"null", or "hmac": keyed HMAC-SHA256 as hex, so joins on the masked column still work).

Both are applied in the source query (`COPY (SELECT ...) TO STDOUT`, in the run's READ ONLY
snapshot), so the clear values never reach the target, its WAL or a pipe of this process.

The HMAC key (option `mask_key`, a secret like the DSNs) never appears in SQL text: COPY (SELECT)
takes no bind parameters, so psycopg2 would interpolate it and the source's
pg_stat_activity.query (and log_statement) would show it. It is handed to the worker's source
sessions at connect time instead, as custom settings in the startup packet's `options` (not
shown in pg_stat_activity nor logged), read in the query with current_setting(). HMAC-SHA256 is
computed from the built-in sha256() (PostgreSQL 11+), so the source needs no pgcrypto: the
sessions get the key already padded and XORed with HMAC's ipad and opad (key_settings), which
is all RFC 2104 needs besides the hash. The result equals any HMAC-SHA256 library's hex digest
of the value's text form (UTF-8), so masked values can be matched outside the database too.

On the target a hmac column is `text`, a null-masked column keeps its type without NOT NULL,
default or identity; each says so in its comment. A key, constraint or index that uses an
excluded or masked column is not created on the target (with a warning naming it): its
definition is about the clear values. A partition key or generated column that uses one cannot
be left out: that table is refused, naming the object.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg2.extensions import connection

from nightcopy.engine.pg_rows import fetch_all, fetch_value
from nightcopy.engine.sql_names import quote_ident
from nightcopy.engine.table_model import Column, TableDef
from nightcopy.errors import ConfigError

if TYPE_CHECKING:  # tablelist imports table_entry, which imports this module's parsers
    from nightcopy.engine.tablelist import TableEntry

MASK_METHODS = ("null", "hmac")
IPAD_SETTING, OPAD_SETTING = "nightcopy.mask_ipad", "nightcopy.mask_opad"
COMMENTS = {"hmac": "masked by nightcopy: hmac-sha256", "null": "masked by nightcopy: null"}
TEXT_OID = 25


@dataclass(frozen=True)
class ColumnMasks:
    exclude: tuple[str, ...] = ()
    mask: tuple[tuple[str, str], ...] = ()  # (column, method)

    @property
    def methods(self) -> dict[str, str]:
        return dict(self.mask)

    @property
    def uses_hmac(self) -> bool:
        return "hmac" in self.methods.values()


@dataclass
class MaskedTables:
    """What the run masks: by (schema, name), and the objects left out of each definition."""
    by_table: dict[tuple[str, str], ColumnMasks] = field(default_factory=dict)

    @property
    def uses_hmac(self) -> bool:
        return any(m.uses_hmac for m in self.by_table.values())

    def of(self, d: TableDef) -> ColumnMasks | None:
        return self.by_table.get((d.ref.schema, d.ref.name))


def masks_of(entries: Sequence[TableEntry]) -> MaskedTables:
    out = MaskedTables()
    for e in entries:
        exclude = e.settings.get("exclude_columns") or ()
        mask = e.settings.get("mask") or {}
        if exclude or mask:
            out.by_table[(e.spec.schema, e.spec.name)] = ColumnMasks(
                tuple(exclude), tuple(sorted(mask.items())))
    return out


def parse_exclude(value: object) -> list[str]:
    """table_entry's parser of `exclude_columns`."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ConfigError('must be a list of column names (["email", "phone"])')
    if len(set(value)) != len(value):
        raise ConfigError("names a column twice")
    return list(value)


def parse_mask(value: object) -> dict[str, str]:
    """table_entry's parser of `mask`."""
    if not isinstance(value, dict) or not value:
        raise ConfigError('must be an object of column -> method ({"email": "hmac", '
                          '"phone": "null"})')
    for column, method in value.items():
        if not str(column).strip() or method not in MASK_METHODS:
            raise ConfigError(f'must map each column to "null" or "hmac" ({column!r} -> '
                              f"{method!r})")
    return dict(value)


def resolve(src: connection, masks: MaskedTables, defs: dict[int, TableDef],
            mask_key: str | None) -> dict[int, str]:
    """Check the masks against the source before anything is copied, and mask the definitions
    in `defs` in place. ConfigError for what no table can copy (an unknown column, hmac without
    a key); returns the tables refused (oid -> one-line reason)."""
    if not masks.by_table:
        return {}
    by_name = {(d.ref.schema, d.ref.name): d for d in defs.values()}
    if masks.uses_hmac:
        if not mask_key:
            raise ConfigError('a "hmac" mask needs the mask key: set mask_key (SSM SecureString '
                              "PREFIX/mask_key, mask_key in nightcopy.toml, or NIGHTCOPY_MASK_KEY)")
        if len(mask_key) < 16:
            raise ConfigError("mask_key is too short: use at least 16 characters (a random "
                              "secret; a short key lets anyone who sees a hash guess the value)")
    refused: dict[int, str] = {}
    for key, m in list(masks.by_table.items()):
        d = by_name.get(key)
        if d is None:
            continue
        problem = _check_columns(d, m)
        if problem:
            raise ConfigError(problem)
        dropped, incoming, refusal = _dependents(src, d, m)
        if refusal:
            refused[d.ref.oid] = refusal
            continue
        defs[d.ref.oid] = dataclasses.replace(_masked_definition(d, m, dropped),
                                              keys_into_left_out=incoming)
    return refused


def _check_columns(d: TableDef, m: ColumnMasks) -> str | None:
    q = d.ref.qualified
    names = {c.name for c in d.columns}
    for key, columns in (("exclude_columns", m.exclude), ("mask", [c for c, _ in m.mask])):
        unknown = [c for c in columns if c not in names]
        if unknown:
            return (f"table list entry for {q}: {key} names {', '.join(unknown)}, not a column "
                    f"of the table (its columns: {', '.join(sorted(names))})")
    both = sorted(set(m.exclude) & set(m.methods))
    if both:
        return f"table list entry for {q}: {', '.join(both)} both excluded and masked: pick one"
    generated = [c.name for c in d.columns if c.name in m.methods and c.generated]
    if generated:
        return (f"table list entry for {q}: {', '.join(generated)} is a generated column: "
                "mask the columns it is computed from, or exclude it")
    return None


_DEPENDENTS_SQL = """
SELECT a.attname,
       CASE WHEN dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND dep.objid = dep.refobjid THEN 'partition key'
            WHEN dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN 'index'
            WHEN dep.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN 'constraint'
            ELSE 'generated column' END,
       CASE WHEN dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 THEN (SELECT relname FROM pg_catalog.pg_class WHERE oid = dep.objid)
            WHEN dep.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                 THEN (SELECT conname FROM pg_catalog.pg_constraint
                        WHERE oid = dep.objid AND contype <> 'n')
            ELSE (SELECT g.attname FROM pg_catalog.pg_attrdef ad
                    JOIN pg_catalog.pg_attribute g ON g.attrelid = ad.adrelid
                     AND g.attnum = ad.adnum
                   WHERE ad.oid = dep.objid AND g.attgenerated <> '') END,
       -- a constraint of another table (a foreign key into this one): its owner
       (SELECT c.conrelid FROM pg_catalog.pg_constraint c
         WHERE dep.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
           AND c.oid = dep.objid AND c.conrelid <> dep.refobjid)
  FROM pg_catalog.pg_depend dep
  JOIN pg_catalog.pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
 WHERE dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND dep.classid IN ('pg_catalog.pg_class'::pg_catalog.regclass,
                       'pg_catalog.pg_constraint'::pg_catalog.regclass,
                       'pg_catalog.pg_attrdef'::pg_catalog.regclass)
   AND (dep.refobjid = %(t)s OR dep.refobjid IN
        (SELECT relid FROM pg_catalog.pg_partition_tree(%(t)s::pg_catalog.regclass)))
   AND a.attname = ANY(%(cols)s)
 ORDER BY 2, 3, 1"""


# Plain columns of a partition key (of the table or of a sub-partitioned partition): pg_depend
# records those the other way round (the column depends on the table), so _DEPENDENTS_SQL,
# which finds expression keys, does not see them.
_KEY_COLUMNS_SQL = """
SELECT (SELECT a.attname FROM pg_catalog.pg_partitioned_table p
  JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid
   AND a.attnum = ANY(p.partattrs::pg_catalog.int2[])
 WHERE (p.partrelid = %(t)s OR p.partrelid IN
        (SELECT relid FROM pg_catalog.pg_partition_tree(%(t)s::pg_catalog.regclass)))
   AND a.attname = ANY(%(cols)s)
 ORDER BY 1 LIMIT 1)"""


def _dependents(src: connection, d: TableDef, m: ColumnMasks
                ) -> tuple[dict[str, str], dict[tuple[int, str], str], str | None]:
    """The indexes and constraints to leave out (name -> 'index x uses masked column c'), the
    foreign keys of other tables that reference a left-out column ((their table's oid, name)
    -> why: engine/foreign_keys skips them), or the reason the table is refused."""
    columns = [*m.exclude, *m.methods]
    with src.cursor() as cur:
        key_column = fetch_value(cur, _KEY_COLUMNS_SQL, {"t": d.ref.oid, "cols": columns})
        rows = fetch_all(cur, _DEPENDENTS_SQL, {"t": d.ref.oid, "cols": columns})
    if key_column is not None:
        rows.insert(0, (key_column, "partition key", None, None))
    dropped: dict[str, str] = {}
    incoming: dict[tuple[int, str], str] = {}
    for column, kind, name, other_table in rows:
        how = "excluded" if column in m.exclude else "masked"
        if other_table is not None and name is not None:
            # The values it would check are not on the target (excluded), or are hashes or
            # NULLs there (masked): the key cannot be created as the source has it.
            incoming[(int(other_table), name)] = (f"references the {how} column {column} of "
                                                  f"{d.ref.qualified}")
            continue
        if kind == "partition key":
            return {}, {}, (f"{d.ref.qualified}: its partition key uses the {how} column {column}: "
                        "a partitioned table cannot be copied without it (mask other columns)")
        if name is None or name == column:
            continue  # a NOT NULL constraint (dropped with the column's NOT NULL), a default
        if kind == "generated column":
            return {}, {}, (f"{d.ref.qualified}: the generated column {name} uses the {how} column "
                        f"{column}: exclude {name} too")
        dropped.setdefault(name, f"{kind} {name} uses the {how} column {column}")
    return dropped, incoming, None


def _masked_column(c: Column, method: str) -> Column:
    if method == "hmac":
        return dataclasses.replace(
            c, type_sql="text", type_oid=TEXT_OID, default=None, identity="", identity_seq=None,
            default_seq=None, collation=None, storage=None, comment=COMMENTS["hmac"])
    return dataclasses.replace(c, not_null=False, identity="", identity_seq=None,
                               comment=COMMENTS["null"])


def _masked_definition(d: TableDef, m: ColumnMasks, dropped: dict[str, str]) -> TableDef:
    methods = m.methods
    columns = [_masked_column(c, methods[c.name]) if c.name in methods else c
               for c in d.columns if c.name not in m.exclude]
    partitions = [dataclasses.replace(
        p, indexes=[i for i in p.indexes if i.name not in dropped],
        constraints=[k for k in p.constraints if k.name not in dropped]) for p in d.partitions]
    replica = d.replica_index if d.replica_index not in dropped else None
    return dataclasses.replace(
        d, columns=columns, partitions=partitions,
        constraints=[k for k in d.constraints if k.name not in dropped],
        indexes=[i for i in d.indexes if i.name not in dropped],
        replica_index=replica,
        replica_identity="d" if d.replica_identity == "i" and replica is None
        else d.replica_identity,
        cluster_index=d.cluster_index if d.cluster_index not in dropped else None,
        masked_from=d, masked_out=sorted(dropped.values()))


def source_expression(column: str, m: ColumnMasks | None) -> str:
    """What the source query selects for `column`: the column, NULL, or its keyed HMAC."""
    col = quote_ident(column)
    method = m.methods.get(column) if m is not None else None
    if method is None:
        return col
    if method == "null":
        return f"NULL AS {col}"
    # HMAC-SHA256 (RFC 2104) from the built-in sha256(): H(K^opad || H(K^ipad || value)).
    inner, outer = (f"pg_catalog.decode(pg_catalog.current_setting('{name}'), 'hex')"
                    for name in (IPAD_SETTING, OPAD_SETTING))
    return (f"pg_catalog.encode(pg_catalog.sha256({outer} || pg_catalog.sha256({inner} || "
            f"pg_catalog.convert_to({col}::pg_catalog.text, 'UTF8'))), 'hex') AS {col}")


def key_settings(mask_key: str) -> dict[str, str]:
    """The source session's settings an "hmac" mask reads: the key padded and XORed with
    HMAC's ipad and opad (as secret as the key itself), as hex."""
    key = mask_key.encode()
    if len(key) > 64:  # SHA-256's block size
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return {IPAD_SETTING: bytes(b ^ 0x36 for b in key).hex(),
            OPAD_SETTING: bytes(b ^ 0x5C for b in key).hex()}


def source_relation(relation: str, columns: list[str], m: ColumnMasks | None) -> str | None:
    """A SELECT of `columns` from `relation` ("ONLY x" or "x") with the masks applied, or None
    when no column of the table is masked (COPY reads the table itself)."""
    if m is None or not m.mask:
        return None
    return f"SELECT {', '.join(source_expression(c, m) for c in columns)} FROM {relation}"


def decided_columns(d: TableDef) -> set[str]:
    """The source columns of `d` that are excluded or masked: decided, not drift."""
    if d.masked_from is None:
        return set()
    kept = {c.name for c in d.columns if c.comment not in COMMENTS.values()}
    return {c.name for c in d.masked_from.columns} - kept


def sensitive_patterns(text: str | None) -> tuple[str, ...]:
    """sensitive_column_patterns as a tuple of lower-case globs."""
    return tuple(p.strip().lower() for p in (text or "").split(",") if p.strip())


def sensitive_match(column: str, patterns: Sequence[str]) -> str | None:
    """The first pattern the column's name matches (case-insensitive), or None."""
    return next((p for p in patterns if fnmatch.fnmatchcase(column.lower(), p)), None)
