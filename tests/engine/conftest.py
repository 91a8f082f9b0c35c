"""Fixtures of the engine tests: the edge corpus and `nightcopy copy` between the test's pair."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

CORPUS = (Path(__file__).parent / "sql" / "edge_corpus.sql").read_text()


@pytest.fixture
def corpus() -> str:
    """tests/engine/sql/edge_corpus.sql: every kind of table, type and constraint we copy."""
    return CORPUS


@pytest.fixture
def copy(cli, dbs) -> Callable[..., CliResult]:
    """`nightcopy copy --source SRC --target TGT --tables TABLES EXTRA...` as a real process."""

    def run(tables: str, *extra: str, env: dict[str, str] | None = None) -> CliResult:
        return cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
                    tables, *extra], env=env)

    return run
