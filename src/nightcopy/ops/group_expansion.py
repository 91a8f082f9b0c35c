"""The tables each group really copies: its list (names and globs) expanded against the source.

`run` needs the counts for its progress bars, `plan` the table names to rebalance, `validate`
one line per problem; all three read the source catalog the same way the worker does
(nightcopy.engine.source_catalog.listed_tables.resolve_tables), so they agree with what the
worker will copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from nightcopy.errors import ConfigError


@dataclass
class ExpandedGroup:
    name: str
    items: list[str]  # as configured (names and globs)
    tables: list[str]  # format('%I.%I') names, in the order the catalog returned them
    has_globs: bool


def expand_group(conn, name: str, items: list[str], exclude: str | None = None
                 ) -> ExpandedGroup:
    """Expand one group's list, less `exclude` (options.exclude_table); ConfigError (naming the
    group) for anything the worker refuses."""
    from nightcopy.engine.source_catalog.listed_tables import resolve_tables
    from nightcopy.engine.tablelist import parse_exclusions, parse_table_list

    try:
        specs = parse_table_list(list(items))
        refs = resolve_tables(conn, specs, parse_exclusions(exclude))
    except ConfigError as exc:
        raise ConfigError(f"group {name}: {exc}") from None
    finally:
        conn.rollback()  # catalog reads only: leave no transaction open between groups
    return ExpandedGroup(
        name=name,
        items=list(items),
        tables=[ref.qualified for ref in refs],
        has_globs=any(spec.is_glob for spec in specs),
    )


def expand_groups(conn, groups: list, exclude: str | None = None) -> list[ExpandedGroup]:
    """Expand every group (TableGroup objects); stops at the first broken group."""
    return [expand_group(conn, g.name, g.tables, exclude) for g in groups]


def overlaps(expanded: list[ExpandedGroup]) -> dict[str, list[str]]:
    """Tables reached by more than one group: table -> group names (two workers would fight
    over the same table's lock, and the second one would fail it)."""
    where: dict[str, list[str]] = {}
    for group in expanded:
        for table in group.tables:
            where.setdefault(table, []).append(group.name)
    return {t: names for t, names in where.items() if len(names) > 1}


def duplicate_group_names(groups: list) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for g in groups:
        if g.name in seen and g.name not in dups:
            dups.append(g.name)
        seen.add(g.name)
    return dups


def check_disjoint(expanded: list[ExpandedGroup]) -> None:
    clash = overlaps(expanded)
    if clash:
        table, names = next(iter(clash.items()))
        more = f" (and {len(clash) - 1} more tables)" if len(clash) > 1 else ""
        raise ConfigError(
            f"table {table} is in groups {' and '.join(names)}{more}: each table must be in "
            "exactly one group (nightcopy validate lists them all)"
        )

