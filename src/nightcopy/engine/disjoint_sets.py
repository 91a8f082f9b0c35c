"""Connected components over links (union-find): which items end up together. Used for swap
units (tables a view reads together), copy units (inheritance hierarchies) and plan's linked
tables."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DisjointSets(Generic[K]):
    def __init__(self, items: Iterable[K]) -> None:
        self._parent: dict[K, K] = {item: item for item in items}

    def __contains__(self, item: object) -> bool:
        return item in self._parent

    def root(self, item: K) -> K:
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]  # path halving
            item = parent[item]
        return item

    def join(self, a: K, b: K) -> None:
        self._parent[self.root(a)] = self.root(b)

    def groups(self, items: Iterable[K]) -> list[list[K]]:
        """`items` by component, each in the order given, components in order of first item."""
        out: dict[K, list[K]] = {}
        for item in items:
            out.setdefault(self.root(item), []).append(item)
        return list(out.values())
