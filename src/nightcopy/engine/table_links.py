"""Which tables belong together in one group (`nightcopy plan`): tables tied by a foreign key,
an inheritance hierarchy, or a target view (or materialized view) that reads both.

A group is one invocation, and an invocation is what keeps such tables consistent: the foreign
keys between its own tables are re-created after the swaps (engine/foreign_keys; a key to a table
of another group is not), and a view over tables of one invocation flips in one transaction
(engine/swap_units, `--swap-scope linked`). Split over two groups, the key is lost on the target
and the view may join two nights. Catalog reads only (the swap's own closure query).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2.extensions import connection

from nightcopy.engine.disjoint_sets import DisjointSets
from nightcopy.engine.pg_rows import fetch_all
from nightcopy.engine.swap_units import LINKS_SQL


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    via: str  # "foreign key", "inheritance", or "view schema.name"


def read_links(conn: connection, names: list[str], *, views: bool) -> list[Link]:
    """The links among `names` (format('%I.%I') table names) in this database's catalog; views
    only when asked (the target's are what readers use; the source's are not copied)."""
    with conn.cursor() as cur:
        rows = fetch_all(cur, LINKS_SQL, (names,))
        family_of: dict[int, str] = {}
        shared: dict[tuple[str, int], list[str]] = {}
        fks: list[tuple[str, int]] = []
        for name, kind, oid, _depth in rows:
            if kind == "family":
                shared.setdefault(("inheritance", oid), []).append(name)
                family_of.setdefault(oid, name)
            elif kind == "dependent" and views:
                shared.setdefault(("view", oid), []).append(name)
            elif kind == "fk":
                fks.append((name, oid))
        view_oids = [oid for kind, oid in shared if kind == "view"]
        view_names: dict[int, str] = dict(fetch_all(cur, "SELECT o, o::pg_catalog.regclass::text FROM "
                                         "pg_catalog.unnest(%s::oid[]) AS o", (view_oids,)))
    conn.rollback()
    links: list[Link] = []
    for (kind, oid), members in shared.items():
        members = list(dict.fromkeys(members))
        via = f"view {view_names.get(oid, oid)}" if kind == "view" else kind
        links += [Link(members[0], other, via) for other in members[1:]]
    for name, other_oid in fks:
        other = family_of.get(other_oid)
        if other is not None and other != name:
            links.append(Link(name, other, "foreign key"))
    return distinct(links)


def distinct(links: list[Link]) -> list[Link]:
    """Each link once (a foreign key is seen from both of its tables, and on both sides)."""
    seen: set[tuple[frozenset[str], str]] = set()
    out = []
    for link in links:
        key = (frozenset((link.a, link.b)), link.via)
        if key not in seen:
            seen.add(key)
            out.append(link)
    return out


def linked_sets(names: list[str], links: list[Link]) -> list[list[str]]:
    """`names` partitioned into sets that must stay together, each in the order of `names`."""
    sets = DisjointSets(names)
    for link in links:
        if link.a in sets and link.b in sets:
            sets.join(link.a, link.b)
    return sets.groups(names)
