"""A copy across major versions: Debian's PostgreSQL 15 as the source, embedded 18 as target.

Same-version tests hide type-OID and catalog differences. CI installs postgresql-15 and sets
NIGHTCOPY_REQUIRE_PG15=1, so there the test fails rather than skips when the server is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import Db, Server
from tests.engine.pg15 import pg15_cluster
from tests.pgutil import digests, user_tables

CORPUS = (Path(__file__).parent / "sql" / "edge_corpus.sql").read_text()


@pytest.fixture(scope="module")
def pg15(pg_servers) -> Iterator[Server]:
    with pg15_cluster("nightcopy-pg15-") as base:
        yield Server(f"host={base} user=postgres dbname=postgres")


def test_pg15_source_to_pg18_target(pg15, pg_servers, cli):
    source = Db(pg15.create_database("xv_src"))
    target = Db(pg_servers[1].create_database("xv_tgt"))
    conn = psycopg2.connect(source.dsn)
    assert conn.server_version // 10000 == 15
    conn.close()
    source.execute(CORPUS)
    result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables", "*.*",
                  "--verify", "checksum"])
    assert result.returncode == 0, result.stderr
    tables = user_tables(source.dsn)
    assert user_tables(target.dsn) == tables
    assert digests(target.dsn, tables) == digests(source.dsn, tables)
    assert target.scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                         "attrelid = 'public.kitchen_sink'::regclass AND attname = 'moods'") == \
        "mood[]"
    # Again, now replacing: the swap path across versions.
    source.execute("UPDATE public.kitchen_sink SET num = num + 1 WHERE id % 2 = 0")
    again = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables", "*.*"])
    assert again.returncode == 0, again.stderr
    assert digests(target.dsn, tables) == digests(source.dsn, tables)
