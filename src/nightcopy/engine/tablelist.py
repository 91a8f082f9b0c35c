"""The table-list grammar (the worker contract: `nightcopy copy --tables`).

A list is comma-separated (whitespace around items ignored) or a JSON array of strings. Items
follow SQL: `schema.table` or `table` (= public); unquoted names fold to lower case; quoted names
keep case, spaces, commas and doubled quotes. `*` and `?` in unquoted parts are globs.

In a JSON (or TOML) list an item may also be an object naming one table with settings of its
own, `{"table": "public.orders", "shrink_guard": 80}` (engine/table_entry.py declares its keys).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from nightcopy.engine.table_entry import parse_entry_object
from nightcopy.errors import ConfigError

# What PostgreSQL accepts as an unquoted identifier, plus the two glob characters.
_UNQUOTED = re.compile(r"[A-Za-z_\u0080-\U0010ffff*?][A-Za-z0-9_$\u0080-\U0010ffff*?]*")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class TableSpec:
    schema: str
    name: str
    schema_is_glob: bool
    name_is_glob: bool
    text: str

    @property
    def is_glob(self) -> bool:
        return self.schema_is_glob or self.name_is_glob

    def matches(self, schema: str, name: str) -> bool:
        return _match(self.schema, self.schema_is_glob, schema) and _match(
            self.name, self.name_is_glob, name)


@dataclass(frozen=True)
class TableEntry:
    """One item of a table list: the name (or glob) and, for the object form, its settings."""
    spec: TableSpec
    settings: dict[str, Any] = field(default_factory=dict)


def _match(pattern: str, is_glob: bool, value: str) -> bool:
    if not is_glob:
        return pattern == value
    return glob_fullmatch(pattern, value)


# --------------------------------------------------------------------------- glob matching
# A regex translation (`*` -> `.*`) backtracks: `*a*a*a*a*a*a*a*a*b` against a 63-character name
# explored every way of placing the stars (minutes per name, and a table list is untrusted input
# for `nightcopy validate`/`plan`). Globs need no backtracking at all: between two stars, the
# leftmost place a piece fits is always the best one (anything a later place leaves for the rest
# of the name, the leftmost place leaves too). So the name is scanned once, left to right, and
# each position is tried at most once: O(len(name) + number of pieces) probes, each probe at
# most one piece long; O(len(name) * len(pattern)) character comparisons in the worst case.


@dataclass(frozen=True)
class _Piece:
    """A run of the pattern between stars: fixed length, `?` any character, the rest literal."""

    length: int
    chunks: tuple[tuple[int, str], ...]  # (offset, literal text) between the `?`s

    @classmethod
    def parse(cls, text: str) -> _Piece:
        chunks = tuple((offset, chunk) for offset, chunk in _literal_chunks(text) if chunk)
        return cls(len(text), chunks)

    def fits_at(self, value: str, position: int) -> bool:
        """Whether the piece matches value[position:position + length] (caller checks room)."""
        return all(value.startswith(chunk, position + offset) for offset, chunk in self.chunks)


def _literal_chunks(text: str) -> list[tuple[int, str]]:
    out, offset = [], 0
    for chunk in text.split("?"):
        out.append((offset, chunk))
        offset += len(chunk) + 1
    return out


@dataclass(frozen=True)
class _Glob:
    head: _Piece  # anchored at the start of the name
    middle: tuple[_Piece, ...]  # floating, in order, between stars
    tail: _Piece | None  # anchored at the end of the name; None when there is no star at all

    @classmethod
    def parse(cls, pattern: str) -> _Glob:
        pieces = pattern.split("*")
        if len(pieces) == 1:
            return cls(_Piece.parse(pattern), (), None)
        middle = tuple(_Piece.parse(p) for p in pieces[1:-1] if p)  # `**` is one star
        return cls(_Piece.parse(pieces[0]), middle, _Piece.parse(pieces[-1]))

    def fullmatch(self, value: str) -> bool:
        head, tail = self.head, self.tail
        if tail is None:
            return len(value) == head.length and head.fits_at(value, 0)
        end = len(value) - tail.length  # the tail's fixed place; the middle must end before it
        if end < head.length or not head.fits_at(value, 0) or not tail.fits_at(value, end):
            return False
        position = head.length
        for piece in self.middle:
            position = _leftmost_fit(piece, value, position, end)
            if position < 0:
                return False
            position += piece.length
        return True


def _leftmost_fit(piece: _Piece, value: str, start: int, end: int) -> int:
    """The first position >= start where piece fits and ends by end, or -1."""
    last = end - piece.length
    if len(piece.chunks) == 1 and piece.chunks[0][0] == 0 and len(piece.chunks[0][1]) == piece.length:
        return value.find(piece.chunks[0][1], start, end)  # no `?`: the C search
    for position in range(start, last + 1):
        if piece.fits_at(value, position):
            return position
    return -1


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> _Glob:
    return _Glob.parse(pattern)


def glob_fullmatch(pattern: str, value: str) -> bool:
    """Whether VALUE matches the glob PATTERN as a whole: `*` any run of characters (also none),
    `?` exactly one character, everything else itself (case-sensitive, any character)."""
    return _compiled(pattern).fullmatch(value)


def _split_items(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ConfigError(f"unbalanced double quote in the table list: {text!r}")
    items.append("".join(current))
    return items


def parse_name(item: str) -> TableSpec:
    """Parse one `schema.table` item (SQL identifier rules, globs in unquoted parts)."""
    original = item
    s = item.strip()
    if not s:
        raise ConfigError("empty item in the table list (two commas in a row or a trailing comma?)")
    parts: list[tuple[str, bool]] = []  # (name, is_glob)
    i = 0
    while True:
        if i < len(s) and s[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= len(s):
                    raise ConfigError(f"unbalanced double quote in table name {original.strip()!r}")
                if s[j] == '"':
                    if j + 1 < len(s) and s[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(s[j])
                j += 1
            if not buf:
                raise ConfigError(f"empty quoted identifier in table name {original.strip()!r}")
            parts.append(("".join(buf), False))
            i = j + 1
        else:
            m = _UNQUOTED.match(s, i)
            if not m:
                raise _not_identifier(original)
            word = m.group(0)
            # PostgreSQL folds only ASCII letters of unquoted names.
            parts.append((word.translate(_ASCII_LOWER), "*" in word or "?" in word))
            i = m.end()
        if i == len(s):
            break
        if s[i] != ".":
            raise _not_identifier(original)
        i += 1
    if len(parts) == 1:
        parts.insert(0, ("public", False))
    if len(parts) != 2:
        raise ConfigError(f"{original.strip()!r} is not a table name: use table or schema.table "
                          "(database names are not allowed)")
    (schema, sglob), (name, nglob) = parts
    return TableSpec(schema, name, sglob, nglob, original.strip())


def _not_identifier(item: str) -> ConfigError:
    return ConfigError(
        f"{item.strip()!r} is not a table name: write schema.table, with double quotes around "
        'names holding spaces, capitals or punctuation (public."Order Items")')


def parse_table_list(value: str | list) -> list[TableSpec]:
    """Parse LIST (a string, comma-separated or JSON array; or an already decoded list)."""
    return [entry.spec for entry in parse_table_entries(value)]


def parse_exclusions(value: str | None) -> list[TableSpec]:
    """--exclude-table (options.exclude_table): names and globs in the table-list grammar."""
    if value is None or not value.strip():
        return []
    try:
        entries = parse_table_entries(value)
    except ConfigError as exc:
        raise ConfigError(f"exclude_table (--exclude-table): {exc}") from None
    if any(entry.settings for entry in entries):
        raise ConfigError("exclude_table (--exclude-table) takes table names and globs, not "
                          "{\"table\": ...} objects")
    return [entry.spec for entry in entries]


def with_schemas(tables: str | list | None, schemas: str | None) -> str | list | None:
    """The table list with `SCHEMA.*` added for each of `schemas` (`--schema`, comma-separated,
    pg_dump's -n); without schemas, the list as given."""
    if not schemas:
        return tables
    items: list = []
    if isinstance(tables, list):
        items = list(tables)
    elif tables is not None and tables.strip():
        text = tables.strip()
        if text.startswith("["):
            parse_table_entries(text)  # its errors, as without --schema
            items = json.loads(text)
        else:
            items = _split_items(text)
    for schema in _split_items(schemas):
        item = f"{schema.strip()}.*"
        try:
            spec: TableSpec | None = parse_name(item) if schema.strip() else None
        except ConfigError:
            spec = None
        if spec is None or spec.name != "*" or not spec.name_is_glob:
            raise ConfigError(f"--schema {schema.strip()!r} is not a schema name: give schema "
                              'names, comma-separated (sales, "Sales EU", sales_*); tables go '
                              "in --tables")
        items.append(item)
    return items


def parse_table_entries(value: str | list) -> list[TableEntry]:
    """Parse LIST into its entries: each item's name and, for an object, its settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"the table list looks like JSON but is not valid JSON "
                                  f"({exc.msg} at character {exc.pos}); write a JSON array of "
                                  'strings (or {"table": ...} objects) like ["public.orders", '
                                  '"sales.*"]') from None
        else:
            if not text:
                raise ConfigError("the table list is empty: name at least one table "
                                  "(--tables, NIGHTCOPY_TABLES or the group's list)")
            value = _split_items(text)
    if not isinstance(value, list):
        raise ConfigError("the table list must be a JSON array of strings (or {\"table\": ...} "
                          "objects)")
    if not value:
        raise ConfigError("the table list is empty: name at least one table "
                          "(--tables, NIGHTCOPY_TABLES or the group's list)")
    entries: list[TableEntry] = []
    seen: dict[tuple[str, str], str] = {}
    for item in value:
        settings: dict[str, Any] = {}
        if isinstance(item, dict):
            item, settings = parse_entry_object(item)
        elif not isinstance(item, str):
            raise ConfigError(f"table list items must be strings or {{\"table\": ...}} objects, "
                              f"not {json.dumps(item, default=str)}")
        spec = parse_name(item)
        if settings and spec.is_glob:
            raise ConfigError(f"table list entry for {spec.text}: an object names one table, not "
                              "a glob; set the option for all tables instead ([options] or SSM "
                              "options), or name each table")
        if not spec.is_glob:
            key = (spec.schema, spec.name)
            if key in seen:
                raise ConfigError(f"table {spec.text!r} is listed twice "
                                  f"(also as {seen[key]!r}); list each table once")
            seen[key] = spec.text
        entries.append(TableEntry(spec, settings))
    return entries
