"""Units of work: the listed tables grouped so that a plain-inheritance hierarchy (INHERITS,
not partitioning) is copied as one unit, in one target transaction.

A child joins its parents' unit when every one of its parents is copied in the same
invocation; a unit is then everything connected that way (multiple inheritance joins two
parents' hierarchies into one). A child with a parent that is not copied is a table of its own,
as is a parent none of whose children are copied; both are warned about.
"""

from __future__ import annotations

from collections.abc import Callable

from nightcopy.engine.disjoint_sets import DisjointSets
from nightcopy.engine.table_model import TableDef

Warn = Callable[[str, str], None]  # (message, table)


def form_units(defs: list[TableDef], warn: Warn, target_version: int) -> list[TableDef]:
    """Each unit's first table (a root of its hierarchy), its `hierarchy` set; a table not in
    any hierarchy is a unit of its own. Warns of children and parents that are not copied.
    target_version: the target's server_version (what hierarchies it accepts)."""
    by_oid = {d.ref.oid: d for d in defs}
    for d in defs:
        d.hierarchy, d.hierarchy_parents, d.generation_from_parents = [], [], set()
    joined = []
    for d in defs:
        if not d.parent_oids or not all(p in by_oid for p in d.parent_oids):
            continue
        parents = [by_oid[p] for p in d.parent_oids]
        unfit = _generation_mismatch(d, parents) if target_version >= 160000 else None
        if unfit is not None:
            warn(f"{d.ref.qualified} inherits from {', '.join(d.inherits_from)}, but {unfit}, "
                 "which the target (PostgreSQL 16 or later) refuses in an inheritance hierarchy: it is "
                 "copied as a table of its own with only its own rows", d.ref.qualified)
            continue
        d.hierarchy_parents = parents
        if target_version < 160000:
            # Before 16 a child's own generation expression for a column its parent
            # generates is refused: the child inherits the parent's (the same on a source
            # of that version, which enforced it when the child joined the hierarchy).
            d.generation_from_parents = {
                c.name for c in d.columns if c.generated and c.name not in d.inherited_only_columns
                and any((pc := p.column(c.name)) is not None and pc.generated for p in parents)}
        joined.append(d)
    for d in defs:
        if d.inherits_from and not d.hierarchy_parents and all(p in by_oid
                                                               for p in d.parent_oids):
            continue  # warned above
        if d.inherits_from and not d.hierarchy_parents:
            missing = [n for n, p in zip(d.inherits_from, d.parent_oids, strict=True)
                       if p not in by_oid]
            warn(f"{d.ref.qualified} inherits from {', '.join(d.inherits_from)}: it is copied "
                 "as a table of its own with only its own rows, without the checks it "
                 f"inherits (list {', '.join(missing)} too to copy the hierarchy)",
                 d.ref.qualified)
    copied_children: dict[int, set[str]] = {}
    for d in joined:
        for p in d.hierarchy_parents:
            copied_children.setdefault(p.ref.oid, set()).add(d.ref.qualified)
    for d in defs:
        missing = [c for c in d.inheritance_children
                   if c not in copied_children.get(d.ref.oid, set())]
        if missing:
            warn(f"{d.ref.qualified} has inheritance children that are not copied with it as "
                 f"its children ({', '.join(missing)}): on the target it holds only its own rows"
                 + (" and its copied children's" if d.ref.oid in copied_children else ""),
                 d.ref.qualified)

    # Connected components over the parent links of the joined children.
    components = DisjointSets(d.ref.oid for d in defs)
    for d in joined:
        for p in d.hierarchy_parents:
            components.join(d.ref.oid, p.ref.oid)
    by_oid = {d.ref.oid: d for d in defs}
    units = []
    for oids in components.groups(d.ref.oid for d in defs):
        group = [by_oid[oid] for oid in oids]
        ordered = _parents_first(group)
        ordered[0].hierarchy = ordered[1:]
        units.append(ordered[0])
    return units


def _generation_mismatch(d: TableDef, parents: list[TableDef]) -> str | None:
    """Why the child cannot be created INHERITS its parents on a current server: a column
    generated on one side of the inheritance only (older servers allowed it)."""
    for c in d.columns:
        for p in parents:
            pc = p.column(c.name)
            if pc is not None and bool(pc.generated) != bool(c.generated):
                return (f"its column {c.name} is {'' if c.generated else 'not '}generated and "
                        f"{p.ref.qualified}'s {'is' if pc.generated else 'is not'}")
    return None


def _parents_first(group: list[TableDef]) -> list[TableDef]:
    """The hierarchy's tables, each after all of its parents (ties: by name)."""
    done: list[TableDef] = []
    placed: set[int] = set()
    waiting = sorted(group, key=lambda d: (d.ref.schema, d.ref.name))
    while waiting:
        ready = next(d for d in waiting
                     if all(p.ref.oid in placed for p in d.hierarchy_parents))
        done.append(ready)
        placed.add(ready.ref.oid)
        waiting.remove(ready)
    return done


def spread_failures(units: list[TableDef], failures: dict[int, str]) -> dict[int, str]:
    """A unit is copied whole or not at all: a failing table fails its whole hierarchy."""
    out = dict(failures)
    for unit in units:
        failing = [d for d in unit.unit if d.ref.oid in failures]
        if not failing:
            continue
        first = failing[0]
        for d in unit.unit:
            out.setdefault(d.ref.oid, f"{d.ref.qualified}: not copied: it is copied with its "
                           f"inheritance hierarchy, and {first.ref.qualified} of that hierarchy "
                           f"cannot be copied ({failures[first.ref.oid]})")
    return out


def hierarchy_depth(d: TableDef) -> int:
    """How many levels of copied parents a table has in its hierarchy (0: a root, or a table
    not copied as part of one)."""
    return 1 + max(hierarchy_depth(p) for p in d.hierarchy_parents) if d.hierarchy_parents else 0


def children_first(tables: list[TableDef]) -> list[TableDef]:
    """The tables with every hierarchy's children before their parents (otherwise in order):
    the order their old target tables can be dropped in, and their staged ones."""
    return sorted(tables, key=lambda d: -hierarchy_depth(d))
