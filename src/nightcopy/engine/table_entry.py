"""The object form of a table-list entry (issue 17): a table with settings of its own.

Wherever a table list is JSON or TOML (`--tables`, NIGHTCOPY_TABLES, SSM `table_groups`,
nightcopy.toml), an entry is a name as before or an object:

    {"table": "public.orders", "shrink_guard": 80}

The keys an object may hold are declared once, here (ENTRY_KEYS: each key's parser); any other
key is an error naming the known ones, so a typo never falls back to a default silently. Later
keys (issue 21's `mode`, `cursor`, `where`, `key`) are added to ENTRY_KEYS and nowhere else.

An object names one table: no glob. Settings meant for every table of a schema belong in the
options (`shrink_guard` in [options] or SSM `options`); a glob object would leave open which of
two overlapping entries wins. Keys whose feature is not built yet are not accepted (an
accepted-but-ignored key would silently do nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from nightcopy.engine import column_masks
from nightcopy.errors import ConfigError
from nightcopy.options import SHRINK_GUARD


def _option_value(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    def check(value: object) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return check


def _column_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a column name (as the catalog spells it: updated_at)")
    return value


_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*")


def _duration(value: object) -> tuple[str, float]:
    """An age such as "36h", "2d", "90m", "1w": (the text, its seconds)."""
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if m is None or float(m.group(1)) <= 0:
        raise ConfigError("must be an age such as \"90m\", \"36h\", \"2d\" or \"1w\"")
    return str(value).strip(), float(m.group(1)) * _UNITS[m.group(2)]


# key -> parser of its value (ConfigError 'must be ...' for a bad one). "table" is the name.
ENTRY_KEYS: dict[str, Callable[[object], Any]] = {
    "shrink_guard": _option_value(SHRINK_GUARD.parse),
    "freshness_column": _column_name,  # engine/freshness.py
    "max_age": _duration,  # needs freshness_column
    "exclude_columns": column_masks.parse_exclude,  # engine/column_masks.py
    "mask": column_masks.parse_mask,
}
KNOWN_KEYS = ("table", *ENTRY_KEYS)


def parse_entry_object(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The table name (the list grammar's text) and the checked settings of an object entry."""
    shown = json.dumps(item, default=str, ensure_ascii=False)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    name = item.get("table")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"table list entry {shown} has no \"table\" name: write "
                          '{"table": "public.orders", ...}')
    settings: dict[str, Any] = {}
    for key, value in item.items():
        if key == "table":
            continue
        parse = ENTRY_KEYS.get(key)
        if parse is None:
            raise ConfigError(f"table list entry for {name}: unknown key {key!r} (known: "
                              f"{', '.join(KNOWN_KEYS)})")
        try:
            settings[key] = parse(value)
        except ConfigError as exc:
            raise ConfigError(f"table list entry for {name}: {key} {exc}, not "
                              f"{json.dumps(value, default=str)}") from None
    if "max_age" in settings and "freshness_column" not in settings:
        raise ConfigError(f"table list entry for {name}: max_age needs freshness_column (the "
                          "date or timestamp column whose newest value it limits)")
    return name, settings
