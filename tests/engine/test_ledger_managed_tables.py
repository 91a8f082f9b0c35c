"""Ledger version 3's managed_tables: every target table nightcopy created, replaced or adopted,
by oid, recorded in the transaction of the swap or the load (issue 12: a glob replaces only
these; the security tests are in tests/security/test_replace_and_schemas.py)."""

from __future__ import annotations

from nightcopy.engine.ledger import LEDGER_VERSION, MIGRATIONS
from tests.engine.conftest import SOURCE, V1_DDL, V1_ROWS, ledger_version

# A version-2 ledger as nightcopy 0.2 left it: the v1 nights of the engine fixtures, upgraded,
# then a night-2 in which public.b failed (its latest result).
V2_LEDGER = V1_DDL + V1_ROWS + MIGRATIONS[1] + """
UPDATE nightcopy.meta SET value = '2' WHERE key = 'schema_version';
INSERT INTO nightcopy.table_results (run_id, table_name, group_name, status, error, finished_at)
VALUES ('night-2', 'public.b', 'g1', 'failed', 'lost the connection', '2026-11-26 02:05+00');
"""


def _managed(db) -> list[tuple[str, bool]]:
    return db.query("""
        SELECT m.table_name, m.table_oid = pg_catalog.to_regclass(m.table_name)::oid
          FROM nightcopy.managed_tables m ORDER BY 1""")


def test_upgrade_from_v2_keeps_glob_nights_replacing_what_they_copied(dbs, copy):
    """The tables an earlier release copied (latest result: copied) stay replaceable by a glob
    after the upgrade; one whose latest result failed is not recorded, so the glob refuses it
    (naming it explicitly, or --adopt, takes it over)."""
    dbs.source.execute(SOURCE)
    dbs.target.execute(V2_LEDGER + """
        CREATE TABLE public.a (id int PRIMARY KEY); INSERT INTO public.a VALUES (1);
        CREATE TABLE public.b (id int PRIMARY KEY); INSERT INTO public.b VALUES (1);""")
    a_before = dbs.target.scalar("SELECT 'public.a'::regclass::oid")
    result = copy("public.*")
    assert ledger_version(dbs.target) == LEDGER_VERSION
    assert [e["table"] for e in result.events_of("table_copied")] == ["public.a"], result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM public.a") == 10
    assert [e["table"] for e in result.events_of("table_failed")] == ["public.b"]
    assert dbs.target.scalar("SELECT count(*) FROM public.b") == 1
    assert result.returncode == 1
    # The swap replaced public.a: its new oid is recorded, the seeded one is gone.
    assert dbs.target.scalar("SELECT 'public.a'::regclass::oid") != a_before
    assert _managed(dbs.target) == [("public.a", True)]
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.managed_tables "
                             "WHERE table_oid = %s", (a_before,)) == 0


def test_a_swap_records_the_new_table_and_forgets_the_old(dbs, copy):
    dbs.source.execute(SOURCE)
    assert copy("public.a").returncode == 0
    first = dbs.target.scalar("SELECT 'public.a'::regclass::oid")
    assert dbs.target.query("SELECT table_oid, table_name FROM nightcopy.managed_tables") == [
        (first, "public.a")]
    assert copy("public.*").returncode == 0
    second = dbs.target.scalar("SELECT 'public.a'::regclass::oid")
    assert second != first
    assert dbs.target.query("SELECT table_oid, table_name FROM nightcopy.managed_tables "
                            "ORDER BY 2") == [(second, "public.a"),
                                              (dbs.target.scalar("SELECT 'public.b'::regclass"
                                                                 "::oid"), "public.b")]


def test_a_table_someone_recreates_under_a_recorded_name_is_not_nightcopys(dbs, copy):
    """By oid, not by name: dropping nightcopy's table and creating another of that name does
    not make the new one replaceable by a glob."""
    dbs.source.execute(SOURCE)
    assert copy("public.*").returncode == 0
    dbs.target.execute("DROP TABLE public.b; CREATE TABLE public.b (note text); "
                       "INSERT INTO public.b VALUES ('mine');")
    result = copy("public.*")
    assert result.returncode == 1
    assert [e["table"] for e in result.events_of("table_failed")] == ["public.b"]
    assert dbs.target.query("SELECT * FROM public.b") == [("mine",)]


def test_a_partitioned_table_is_recorded_by_its_parent(dbs, copy):
    dbs.source.execute("""
        CREATE TABLE public.events (id int, day date) PARTITION BY RANGE (day);
        CREATE TABLE public.events_2026 PARTITION OF public.events
            FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO public.events VALUES (1, '2026-05-01');""")
    assert copy("public.*").returncode == 0
    assert _managed(dbs.target) == [("public.events", True)]
    result = copy("public.*", "--strategy", "truncate")
    assert result.returncode == 0, result.stderr
    assert _managed(dbs.target) == [("public.events", True)]
