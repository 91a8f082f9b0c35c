"""The shared objects tables need (extensions, collations, types, functions): which tables
need each one, and an order to create them in where one requires another."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

from nightcopy.engine.table_model import TableDef

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def dependencies_first(by_key: Mapping[K, V], requires: Callable[[V], Iterable[K]]
                       ) -> list[V]:
    """Every object after the ones it requires (those in `by_key`; others are taken as
    there already), otherwise in key order. A cycle is broken where it is met."""
    ordered: list[V] = []
    seen: set[K] = set()

    def visit(key: K) -> None:
        if key in seen or key not in by_key:
            return
        seen.add(key)
        for required in requires(by_key[key]):
            visit(required)
        ordered.append(by_key[key])

    for key in sorted(by_key):  # type: ignore[type-var]  # str and int keys sort
        visit(key)
    return ordered


def needed_by_tables(defs: Iterable[TableDef], objects_of: Callable[[TableDef], Iterable[V]],
                     key: Callable[[V], K]) -> tuple[dict[K, V], dict[K, list[TableDef]]]:
    """Each object the tables need, once (by key, in the order first met), and the tables
    that need it."""
    wanted: dict[K, V] = {}
    users: dict[K, list[TableDef]] = {}
    for d in defs:
        for obj in objects_of(d):
            wanted.setdefault(key(obj), obj)
            users.setdefault(key(obj), []).append(d)
    return wanted, users
