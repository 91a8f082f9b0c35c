"""table_groups: the JSON value that splits the tables into groups (one worker each)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nightcopy.engine.tablelist import parse_table_list
from nightcopy.errors import ConfigError
from nightcopy.options import NAME_RULE, name_problem


@dataclass(frozen=True)
class TableGroup:
    name: str
    tables: list[str]


_SHAPE = ('table_groups must be a JSON list of {"name": ..., "tables": [...]} objects, '
          'or a list of lists of table names')


def unfit_group_names(groups: list[TableGroup]) -> list[str]:
    """The names that do not fit [A-Za-z0-9_-]{1,80} (nightcopy.options.NAME_PATTERN)."""
    return [g.name for g in groups if name_problem(g.name) is not None]


def unfit_names_message(names: list[str]) -> str:
    """One line naming every group whose name does not fit, and what to do."""
    shown = ", ".join(repr(n) for n in names)
    return (f"group name{'s' if len(names) > 1 else ''} {shown} must be {NAME_RULE} (a group "
            "name becomes part of the report's path): rename "
            f"{'them' if len(names) > 1 else 'it'}")


def check_group_names(groups: list[TableGroup]) -> None:
    bad = unfit_group_names(groups)
    if bad:
        raise ConfigError(unfit_names_message(bad))


def parse_table_groups(value: str | list, *, check_names: bool = True) -> list[TableGroup]:
    """Parse and check table_groups; every group's list must itself be a valid table list, and
    every name fit [A-Za-z0-9_-]{1,80} (unless check_names is False: `nightcopy validate` lists
    the names that do not fit among its other problems)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"table_groups is not valid JSON ({exc.msg} at character "
                              f"{exc.pos}); {_SHAPE}") from None
    if not isinstance(value, list) or not value:
        raise ConfigError(f"table_groups is empty or not a list; {_SHAPE}")
    groups: list[TableGroup] = []
    for i, item in enumerate(value, start=1):
        name: object  # checked below: a str and a list once the item passed
        tables: object
        if isinstance(item, list):
            name, tables = f"g{i}", item
        elif isinstance(item, dict):
            name, tables = item.get("name"), item.get("tables")
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"table_groups item {i} has no \"name\" string; {_SHAPE}")
            if not isinstance(tables, list):
                raise ConfigError(f"group {name!r} in table_groups has no \"tables\" list; {_SHAPE}")
        else:
            raise ConfigError(f"table_groups item {i} is {type(item).__name__}; {_SHAPE}")
        if not tables:
            raise ConfigError(f"group {name!r} in table_groups has no tables; remove it or add some")
        for t in tables:
            if not isinstance(t, str | dict):
                raise ConfigError(f"group {name!r} in table_groups holds {json.dumps(t)}: "
                                  'table names must be strings or {"table": ...} objects')
        try:
            parse_table_list(tables)
        except ConfigError as exc:
            raise ConfigError(f"group {name!r} in table_groups: {exc}") from None
        groups.append(TableGroup(name, list(tables)))
    if check_names:
        check_group_names(groups)
    owner: dict[tuple[str, str], str] = {}
    for g in groups:
        for spec in parse_table_list(g.tables):
            if spec.is_glob:
                continue  # overlaps of globs need the source: `nightcopy validate` checks them
            key = (spec.schema, spec.name)
            if key in owner and owner[key] != g.name:
                raise ConfigError(f"table {spec.text!r} is in group {owner[key]!r} and in group "
                                  f"{g.name!r}; a table belongs to one group (two workers would "
                                  "copy it at once)")
            owner[key] = g.name
    names = [g.name for g in groups]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"table_groups names group(s) {', '.join(dupes)} more than once; "
                          "give each group its own name")
    return groups


def find_group(groups: list[TableGroup], name: str) -> TableGroup:
    for g in groups:
        if g.name == name:
            return g
    known = ", ".join(g.name for g in groups)
    raise ConfigError(f"group {name!r} is not in table_groups (groups: {known})")
