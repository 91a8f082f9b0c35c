"""Fixtures of the engine tests: the edge corpus, `nightcopy copy` between the test's pair, and
ledgers as older releases left them (for the migration and version tests)."""

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

# Ledger version 1 exactly as nightcopy 0.1.0 created it (engine/ledger.py's DDL then).
V1_DDL = """
CREATE SCHEMA IF NOT EXISTS nightcopy;
CREATE TABLE IF NOT EXISTS nightcopy.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS nightcopy.runs (
    run_id            text NOT NULL,
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- running | succeeded | failed
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    tables            integer,
    failed            integer,
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    host              text,
    nightcopy_version text,
    options           jsonb,
    PRIMARY KEY (run_id, group_name)
);
CREATE TABLE IF NOT EXISTS nightcopy.table_results (
    run_id            text NOT NULL,
    table_name        text NOT NULL,          -- format('%I.%I', schema, table)
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- copied | failed
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    copy_seconds      double precision,
    index_seconds     double precision,
    lock_wait_seconds double precision,
    attempts          integer NOT NULL DEFAULT 1,
    error             text,
    started_at        timestamptz,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name)
);
CREATE INDEX IF NOT EXISTS table_results_finished_idx
    ON nightcopy.table_results (finished_at);
INSERT INTO nightcopy.meta VALUES ('schema_version', '1');
"""

# Two nights as a version-1 worker recorded them: night-0 complete, night-1 killed after
# copying public.a (its invocation row still says running).
V1_ROWS = """
INSERT INTO nightcopy.runs (run_id, group_name, status, started_at, finished_at, tables, failed,
                            rows, bytes, seconds, host, nightcopy_version, options)
VALUES ('night-0', 'g1', 'succeeded', '2026-11-24 02:00+00', '2026-11-24 02:10+00', 2, 0, 15,
        1500, 600, 'old-host', '0.1.0', '{"jobs": 2}'),
       ('night-1', 'g1', 'running', '2026-11-25 02:00+00', NULL, NULL, NULL, NULL, NULL, NULL,
        'old-host', '0.1.0', '{"jobs": 2}');
INSERT INTO nightcopy.table_results (run_id, table_name, group_name, status, rows, bytes,
                                     seconds, copy_seconds, index_seconds, lock_wait_seconds,
                                     started_at, finished_at)
VALUES ('night-0', 'public.a', 'g1', 'copied', 10, 1000, 400, 300, 50, 0,
        '2026-11-24 02:00+00', '2026-11-24 02:06:40+00'),
       ('night-0', 'public.b', 'g1', 'copied', 5, 500, 200, 150, 20, 0,
        '2026-11-24 02:06:40+00', '2026-11-24 02:10+00'),
       ('night-1', 'public.a', 'g1', 'copied', 10, 1000, 410, 300, 50, 0,
        '2026-11-25 02:00+00', '2026-11-25 02:06:50+00');
"""

SOURCE = """
CREATE TABLE public.a (id int PRIMARY KEY);
INSERT INTO public.a SELECT generate_series(1, 10);
CREATE TABLE public.b (id int PRIMARY KEY);
INSERT INTO public.b SELECT generate_series(1, 5);
"""


@pytest.fixture
def v1_ledger(dbs):
    """A source with public.a and public.b; a target whose ledger is version 1, with rows."""
    dbs.source.execute(SOURCE)
    dbs.target.execute(V1_DDL + V1_ROWS)
    return dbs


def ledger_version(db) -> int:
    return int(db.scalar("SELECT value FROM nightcopy.meta WHERE key = 'schema_version'"))
