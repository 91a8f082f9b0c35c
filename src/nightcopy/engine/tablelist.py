"""The table-list grammar (design.md, "worker contract").

A list is comma-separated (whitespace around items ignored) or a JSON array of strings. Items
follow SQL: `schema.table` or `table` (= public); unquoted names fold to lower case; quoted names
keep case, spaces, commas and doubled quotes. `*` and `?` in unquoted parts are globs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

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


def _match(pattern: str, is_glob: bool, value: str) -> bool:
    if not is_glob:
        return pattern == value
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _split_items(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    items, current, quoted = [], [], False
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
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"the table list looks like JSON but is not valid JSON "
                                  f"({exc.msg} at character {exc.pos}); write a JSON array of "
                                  'strings like ["public.orders", "sales.*"]') from None
        else:
            if not text:
                raise ConfigError("the table list is empty: name at least one table "
                                  "(--tables, NIGHTCOPY_TABLES or the group's list)")
            value = _split_items(text)
    if not isinstance(value, list):
        raise ConfigError("the table list must be a JSON array of strings")
    if not value:
        raise ConfigError("the table list is empty: name at least one table "
                          "(--tables, NIGHTCOPY_TABLES or the group's list)")
    specs: list[TableSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"table list items must be strings, not {json.dumps(item)}")
        spec = parse_name(item)
        if not spec.is_glob:
            key = (spec.schema, spec.name)
            if key in seen:
                raise ConfigError(f"table {spec.text!r} is listed twice "
                                  f"(also as {seen[key]!r}); list each table once")
            seen[key] = spec.text
        specs.append(spec)
    return specs
