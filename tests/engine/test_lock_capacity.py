"""A group too big for the target's lock table (issue 21, "thousands of tables"): the run holds
one advisory lock per table until it ends, and a server's shared lock table holds about
max_locks_per_transaction x (max_connections + max_prepared_transactions) locks. Such a group
used to fail mid-run as "internal error: OutOfMemory: out of shared memory"; it is refused
before anything is written, naming the setting and the largest group that fits. A target with
a small lock table (Debian's PostgreSQL 15, max_locks_per_transaction 10, max_connections 20)
shows it with 160 tables instead of 10,000."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Db, Server
from tests.engine.pg15 import pg15_cluster


@pytest.fixture(scope="module")
def small_lock_table() -> Iterator[Server]:
    with pg15_cluster("nightcopy-locks-",
                      "-c max_locks_per_transaction=10 -c max_connections=20") as base:
        yield Server(f"host={base} user=postgres dbname=postgres")


def test_a_group_too_big_for_the_lock_table_is_refused_up_front(small_lock_table, dbs, cli):
    dbs.source.execute("DO $$ BEGIN FOR i IN 1..160 LOOP EXECUTE format("
                       "'CREATE TABLE public.t%s (id int PRIMARY KEY)', i); END LOOP; END $$")
    target = Db(small_lock_table.create_database("locks_tgt"))
    env = {"NIGHTCOPY_SOURCE_DSN": dbs.source.dsn, "NIGHTCOPY_TARGET_DSN": target.dsn}
    refused = cli(["copy", "-t", "public.*"], env=env)
    assert refused.returncode == 1
    assert ("160 tables in one invocation do not fit the target's lock table" in refused.stderr)
    assert "groups of at most 150 tables, or raise max_locks_per_transaction on the target " \
           "to at least 11" in refused.stderr
    assert "internal error" not in refused.stderr
    assert target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'nightcopy%'") == 0
    # A group that fits is copied on the same target.
    fits = cli(["copy", "-t", "public.t1*"], env=env)  # t1, t10-t19, t100-t160: 72 tables
    assert fits.returncode == 0, fits.stderr
    assert len(fits.events_of("table_copied")) == 72
