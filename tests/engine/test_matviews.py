"""Materialized views on the target over copied tables (issue 14): the swap rebuilds them over
the new rows (populated as their owner, with their indexes, grants, comments and options) and
moves them in with the table; truncate refreshes them after the load. Real servers, the real
command line; --jobs 1 where two copied tables are read by one view (two workers swapping tables
linked by a target view is the unit swap's matter, tests/engine/test_swap_under_load.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
import pytest

from tests.conftest import Db, DbPair
from tests.engine.test_cross_version import pg15  # noqa: F401  (the PostgreSQL 15 server)
from tests.pgutil import PollingReader

SOURCE_TABLES = """
CREATE TABLE public.rental (id int PRIMARY KEY, inventory_id int NOT NULL, night int NOT NULL);
CREATE TABLE public.inventory (id int PRIMARY KEY, store int NOT NULL, night int NOT NULL);
"""


def _night(db: Db, night: int, rentals: int = 300, inventory: int = 30) -> None:
    db.execute(f"""
        TRUNCATE public.rental, public.inventory;
        INSERT INTO public.inventory SELECT g, g % 3, {night} FROM generate_series(1, {inventory}) g;
        INSERT INTO public.rental SELECT g, 1 + g % {inventory}, {night}
          FROM generate_series(1, {rentals}) g""")


def _as(db: Db, role: str) -> Db:
    params = psycopg2.extensions.parse_dsn(db.dsn)
    params.pop("password", None)
    params["user"] = role
    return Db(psycopg2.extensions.make_dsn(**params))


@dataclass
class Roles:
    owner: str  # owns the materialized views
    reader: str  # reads them through grants
    worker: str  # a non-superuser worker (used by the tests that need one)


@pytest.fixture
def roles(dbs: DbPair, pg_servers) -> Iterator[Roles]:
    """Per-test roles (roles are cluster-wide); dropped after the test's databases."""
    suffix = psycopg2.extensions.parse_dsn(dbs.target.dsn)["dbname"].removeprefix("tgt_")
    r = Roles(f"{suffix}_mvowner", f"{suffix}_mvreader", f"{suffix}_mvworker")
    servers = pg_servers
    names = [psycopg2.extensions.parse_dsn(db.dsn)["dbname"] for db in (dbs.source, dbs.target)]
    try:
        for server in servers:
            admin = Db(server.admin_dsn)
            for role in (r.owner, r.reader, r.worker):
                if not admin.scalar("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                    admin.execute(f'CREATE ROLE "{role}" LOGIN')
        yield r
    finally:
        for server, name in zip(servers, names, strict=True):
            server.drop_database(name)  # first: the roles own objects there
        for server in servers:
            for role in (r.owner, r.reader, r.worker):
                Db(server.admin_dsn).execute(f'DROP ROLE IF EXISTS "{role}"')


def _copy(cli, dbs: DbPair, *extra: str, source: Db | None = None, target: Db | None = None,
          tables: str = "public.rental,public.inventory"):
    return cli(["copy", "--source", (source or dbs.source).dsn,
                "--target", (target or dbs.target).dsn, "--tables", tables, "--jobs", "1",
                *extra], timeout=120)


def _first_night(cli, dbs: DbPair, roles: Roles) -> None:
    dbs.source.execute(SOURCE_TABLES)
    _night(dbs.source, 0)
    first = _copy(cli, dbs)
    assert first.returncode == 0, first.stderr
    dbs.target.execute(f"""
        CREATE SCHEMA report AUTHORIZATION "{roles.owner}";
        GRANT USAGE ON SCHEMA report TO "{roles.reader}";
        GRANT SELECT ON public.rental, public.inventory TO "{roles.owner}";""")


def _acl(db: Db, relation: str) -> str:
    return db.scalar("SELECT relacl::text FROM pg_class WHERE oid = %s::regclass", (relation,))


def test_matview_over_a_copied_table_is_rebuilt_with_what_it_had(cli, dbs, roles) -> None:
    """Rows of tonight, same indexes, grants, comments, options and owner, and a reader polling
    it during the copy never sees it unpopulated or gets an error."""
    _first_night(cli, dbs, roles)
    owner = _as(dbs.target, roles.owner)
    owner.execute(f"""
        CREATE MATERIALIZED VIEW report.per_night WITH (autovacuum_enabled = false) AS
        SELECT night, count(*) AS rentals FROM public.rental GROUP BY night;
        CREATE UNIQUE INDEX per_night_key ON report.per_night (night);
        COMMENT ON INDEX report.per_night_key IS 'one row a night';
        COMMENT ON MATERIALIZED VIEW report.per_night IS 'rentals per night';
        COMMENT ON COLUMN report.per_night.rentals IS 'how many';
        GRANT SELECT ON report.per_night TO "{roles.reader}";
        GRANT SELECT (night) ON report.per_night TO PUBLIC;""")
    rental_acl = _acl(dbs.target, "public.rental")
    with PollingReader(_as(dbs.target, roles.reader).dsn,
                       "SELECT count(*) FROM report.per_night") as reader:
        _night(dbs.source, 1, rentals=20000)
        result = _copy(cli, dbs)
    assert result.returncode == 0, result.stderr
    assert not reader.errors, reader.errors[:3]
    assert reader.seen
    t = dbs.target
    assert t.query("SELECT night, rentals FROM report.per_night") == [(1, 20000)]
    assert t.scalar("SELECT relispopulated FROM pg_class WHERE oid = 'report.per_night'::regclass")
    assert t.scalar("SELECT pg_get_userbyid(relowner) FROM pg_class "
                    "WHERE oid = 'report.per_night'::regclass") == roles.owner
    assert t.scalar("SELECT reloptions::text FROM pg_class "
                    "WHERE oid = 'report.per_night'::regclass") == "{autovacuum_enabled=false}"
    assert t.scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'per_night_key'") == (
        "CREATE UNIQUE INDEX per_night_key ON report.per_night USING btree (night)")
    assert t.scalar("SELECT obj_description('report.per_night_key'::regclass)") == "one row a night"
    assert t.scalar("SELECT obj_description('report.per_night'::regclass)") == "rentals per night"
    assert t.scalar("SELECT col_description('report.per_night'::regclass, 2)") == "how many"
    assert t.scalar("SELECT has_table_privilege(%s, 'report.per_night', 'SELECT')",
                    (roles.reader,))
    assert t.scalar("SELECT has_column_privilege('public', 'report.per_night', 'night', "
                    "'SELECT')")
    # The owner lent nothing it keeps: no privilege on the staging schema, the table's grants
    # as they were.
    assert not t.scalar("SELECT has_schema_privilege(%s, 'nightcopy_stage_public', 'USAGE')",
                        (roles.owner,))
    assert _acl(t, "public.rental") == rental_acl
    assert t.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage_%'") == 0


def test_matview_query_runs_as_its_owner_never_as_the_worker(cli, dbs, roles) -> None:
    """Its query records who ran it: the owner, not the (superuser) worker, in the swap's
    rebuild and in truncate's refresh."""
    _first_night(cli, dbs, roles)
    _as(dbs.target, roles.owner).execute("""
        CREATE MATERIALIZED VIEW report.who AS
        SELECT current_user::text AS who, max(night) AS night FROM public.rental""")
    _night(dbs.source, 1)
    assert _copy(cli, dbs, tables="public.rental").returncode == 0
    assert dbs.target.query("SELECT who, night FROM report.who") == [(roles.owner, 1)]
    _night(dbs.source, 2)
    assert _copy(cli, dbs, "--strategy", "truncate", tables="public.rental").returncode == 0
    assert dbs.target.query("SELECT who, night FROM report.who") == [(roles.owner, 2)]


def _per_store(dbs: DbPair, roles: Roles) -> None:
    """A materialized view joining the two copied tables, owned by the owner role."""
    _as(dbs.target, roles.owner).execute("""
        CREATE MATERIALIZED VIEW report.per_store AS
        SELECT i.store, i.night AS inventory_night, r.night AS rental_night, count(*) AS n
          FROM public.rental r JOIN public.inventory i ON i.id = r.inventory_id
         GROUP BY 1, 2, 3""")


def test_matview_joining_two_copied_tables(cli, dbs, roles) -> None:
    _first_night(cli, dbs, roles)
    _per_store(dbs, roles)
    _night(dbs.source, 1, rentals=600, inventory=60)
    result = _copy(cli, dbs)
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT DISTINCT inventory_night, rental_night, sum(n) OVER () "
                            "FROM report.per_store") == [(1, 1, 600)]


def test_chain_of_matviews_and_a_view_over_them(cli, dbs, roles) -> None:
    """A materialized view over a materialized view over the table, and a plain view over the
    second: all rebuilt in order, the view re-created over the new one."""
    _first_night(cli, dbs, roles)
    _as(dbs.target, roles.owner).execute(f"""
        CREATE MATERIALIZED VIEW report.per_night AS
        SELECT night, count(*) AS rentals FROM public.rental GROUP BY night;
        CREATE MATERIALIZED VIEW report.nights AS SELECT night FROM report.per_night;
        CREATE VIEW report.latest AS SELECT max(night) AS night FROM report.nights;
        GRANT SELECT ON report.latest TO "{roles.reader}";""")
    _night(dbs.source, 1)
    result = _copy(cli, dbs, tables="public.rental")
    assert result.returncode == 0, result.stderr
    reader = _as(dbs.target, roles.reader)
    assert reader.scalar("SELECT night FROM report.latest") == 1
    assert dbs.target.query("SELECT * FROM report.per_night") == [(1, 300)]


def test_matview_whose_owner_the_worker_cannot_act_as_fails_the_table(cli, dbs, roles) -> None:
    """A non-superuser worker, not a member of the owner: the table fails naming the
    materialized view and the GRANT, the target keeps last night. Once granted, it works, and
    the owner is lent nothing for good."""
    w = roles.worker
    dbname = psycopg2.extensions.parse_dsn(dbs.target.dsn)["dbname"]
    dbs.source.execute(SOURCE_TABLES + f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{w}"')
    dbs.target.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO "{w}";'
                       f'GRANT CREATE ON SCHEMA public TO "{w}"')
    _night(dbs.source, 0)
    source, target = _as(dbs.source, w), _as(dbs.target, w)
    first = _copy(cli, dbs, source=source, target=target)
    assert first.returncode == 0, first.stderr
    dbs.target.execute(f"""
        CREATE SCHEMA report AUTHORIZATION "{roles.owner}";
        GRANT SELECT ON public.rental TO "{roles.owner}";""")
    _as(dbs.target, roles.owner).execute("""
        CREATE MATERIALIZED VIEW report.per_night AS
        SELECT night, count(*) AS rentals FROM public.rental GROUP BY night""")
    _night(dbs.source, 1)
    result = _copy(cli, dbs, source=source, target=target)
    assert result.returncode == 1
    failed = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert list(failed) == ["public.rental"], result.stderr
    assert "materialized view report.per_night" in failed["public.rental"]
    assert f"GRANT {roles.owner} TO {w}" in failed["public.rental"]
    assert "Traceback" not in result.stderr
    assert dbs.target.query("SELECT * FROM report.per_night") == [(0, 300)]
    assert dbs.target.scalar("SELECT max(night) FROM public.rental") == 0
    # Truncate refreshes it as its owner too: refused the same way, before anything commits.
    truncate = _copy(cli, dbs, "--strategy", "truncate", source=source, target=target)
    assert truncate.returncode == 1
    assert f"GRANT {roles.owner} TO {w}" in truncate.events_of("table_failed")[0]["error"]
    assert dbs.target.scalar("SELECT max(night) FROM public.rental") == 0

    dbs.target.execute(f'GRANT "{roles.owner}" TO "{w}"')
    rental_acl = _acl(dbs.target, "public.rental")
    again = _copy(cli, dbs, source=source, target=target)
    assert again.returncode == 0, again.stderr
    assert dbs.target.query("SELECT * FROM report.per_night") == [(1, 300)]
    assert not dbs.target.scalar("SELECT has_schema_privilege(%s, 'nightcopy_stage_public', "
                                 "'CREATE')", (roles.owner,))
    assert _acl(dbs.target, "public.rental") == rental_acl


def test_worker_owned_matview_calling_an_untrusted_function(cli, dbs, roles) -> None:
    """Owned by the worker, its query would run as the worker: what it calls must pass the
    trust rule (--trust), like the expressions of a load."""
    _first_night(cli, dbs, roles)
    dbs.target.execute(f"""
        CREATE FUNCTION report.twice(n bigint) RETURNS bigint LANGUAGE sql IMMUTABLE
            AS $$ SELECT n * 2 $$;
        ALTER FUNCTION report.twice(bigint) OWNER TO "{roles.owner}";
        CREATE MATERIALIZED VIEW public.doubled AS
        SELECT night, report.twice(count(*)) AS n FROM public.rental GROUP BY night""")
    _night(dbs.source, 1)
    result = _copy(cli, dbs, tables="public.rental")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "materialized view public.doubled" in error and "report.twice(bigint)" in error
    assert "--trust" in error and "report.twice" in error
    assert dbs.target.query("SELECT * FROM public.doubled") == [(0, 600)]
    trusted = _copy(cli, dbs, "--trust", "report.twice", tables="public.rental")
    assert trusted.returncode == 0, trusted.stderr
    assert dbs.target.query("SELECT * FROM public.doubled") == [(1, 600)]


def test_matview_reading_the_table_through_a_view_blocks_the_swap(cli, dbs, roles) -> None:
    _first_night(cli, dbs, roles)
    _as(dbs.target, roles.owner).execute("""
        CREATE VIEW report.rentals AS SELECT * FROM public.rental;
        CREATE MATERIALIZED VIEW report.per_night AS
        SELECT night, count(*) AS n FROM report.rentals GROUP BY night""")
    _night(dbs.source, 1)
    result = _copy(cli, dbs, tables="public.rental")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "materialized view report.per_night reads it through report.rentals" in error
    assert "--strategy truncate" in error
    truncate = _copy(cli, dbs, "--strategy", "truncate", tables="public.rental")
    assert truncate.returncode == 0, truncate.stderr
    assert dbs.target.query("SELECT * FROM report.per_night") == [(1, 300)]


def test_matview_whose_names_resolve_elsewhere_next_to_the_staged_tables_fails(cli, dbs,
                                                                               roles) -> None:
    """The pg_depend check: a relation in the staging schema under the name of one the
    materialized view reads (not copied tonight) would capture that name; the table fails
    naming the materialized view and what it would have read, the target keeps last night.
    (A view: a leftover staged *table* is dropped by the run's start, see docs/swap.md.)"""
    _first_night(cli, dbs, roles)
    _as(dbs.target, roles.owner).execute("""
        CREATE MATERIALIZED VIEW report.per_store AS
        SELECT i.store, r.night, count(*) AS n
          FROM public.rental r JOIN public.inventory i ON i.id = r.inventory_id
         GROUP BY 1, 2""")
    dbs.target.execute("CREATE VIEW nightcopy_stage_public.inventory AS "
                       "SELECT * FROM public.inventory;"
                       f'GRANT SELECT ON nightcopy_stage_public.inventory TO "{roles.owner}"')
    _night(dbs.source, 1)
    result = _copy(cli, dbs, tables="public.rental")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "materialized view report.per_store cannot be rebuilt" in error, error
    assert "nightcopy_stage_public.inventory" in error
    assert dbs.target.query("SELECT DISTINCT night FROM report.per_store") == [(0,)]
    assert dbs.target.scalar("SELECT max(night) FROM public.rental") == 0


def test_truncate_refreshes_matviews_after_the_load(cli, dbs, roles) -> None:
    _first_night(cli, dbs, roles)
    _as(dbs.target, roles.owner).execute("""
        CREATE MATERIALIZED VIEW report.per_night AS
        SELECT night, count(*) AS rentals FROM public.rental GROUP BY night;
        CREATE MATERIALIZED VIEW report.nights AS SELECT night FROM report.per_night;""")
    oid = dbs.target.scalar("SELECT 'report.per_night'::regclass::oid")
    _night(dbs.source, 1, rentals=500)
    result = _copy(cli, dbs, "--strategy", "truncate", tables="public.rental")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT * FROM report.per_night") == [(1, 500)]
    assert dbs.target.query("SELECT * FROM report.nights") == [(1,)]
    assert dbs.target.scalar("SELECT 'report.per_night'::regclass::oid") == oid


def test_pg15_target_rebuilds_as_a_member_of_the_owner(pg15, pg_servers, cli) -> None:  # noqa: F811
    """PostgreSQL 15 on the target (other ownership and privilege rules than 18's): a
    non-superuser worker, member of the owner, rebuilds a chain over a copied table; the owner
    keeps no privilege it was lent."""
    source = Db(pg_servers[0].create_database("mv15_src"))
    target = Db(pg15.create_database("mv15_tgt"))
    owner, worker = "mv15_owner", "mv15_worker"
    try:
        for db in (source, target):
            for role in (owner, worker):
                if not db.scalar("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                    db.execute(f"CREATE ROLE {role} LOGIN")
        source.execute(SOURCE_TABLES + f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {worker}")
        target.execute(f"GRANT CREATE ON DATABASE mv15_tgt TO {worker};"
                       f"GRANT CREATE ON SCHEMA public TO {worker}; GRANT {owner} TO {worker}")
        _night(source, 0)
        pair = DbPair(_as(source, worker), _as(target, worker))
        assert _copy(cli, pair).returncode == 0
        target.execute(f"CREATE SCHEMA report AUTHORIZATION {owner};"
                       f"GRANT SELECT ON public.rental TO {owner}")
        _as(target, owner).execute("""
            CREATE MATERIALIZED VIEW report.per_night AS
            SELECT night, count(*) AS rentals FROM public.rental GROUP BY night;
            CREATE UNIQUE INDEX per_night_key ON report.per_night (night);
            CREATE MATERIALIZED VIEW report.nights AS SELECT night FROM report.per_night""")
        acl = _acl(target, "public.rental")
        _night(source, 1)
        result = _copy(cli, pair)
        assert result.returncode == 0, result.stderr
        assert target.query("SELECT * FROM report.per_night") == [(1, 300)]
        assert target.query("SELECT * FROM report.nights") == [(1,)]
        assert target.scalar("SELECT to_regclass('report.per_night_key') IS NOT NULL")
        assert _acl(target, "public.rental") == acl
        assert not target.scalar("SELECT has_schema_privilege(%s, 'nightcopy_stage_public', "
                                 "'USAGE')", (owner,))
        truncate = _copy(cli, pair, "--strategy", "truncate")
        assert truncate.returncode == 0, truncate.stderr
    finally:
        pg_servers[0].drop_database("mv15_src")
        pg15.drop_database("mv15_tgt")
        for db in (Db(pg_servers[0].admin_dsn), Db(pg15.admin_dsn)):
            for role in (worker, owner):
                db.execute(f"DROP ROLE IF EXISTS {role}")


def test_swap_retried_after_a_lock_timeout_midway_replaces_the_matview_again(cli, dbs,
                                                                             roles) -> None:
    """A try of the unit's swap that times out on a lock after its first table was swapped in
    is rolled back to its savepoint, the old materialized view with it: the retry must replace
    it again (it used to remember it as replaced and fail on DROP TABLE, which
    scripts/swap-stress saw once in a while). The lock timeout is made deterministic: the
    first DROP TABLE of the swap raises lock_not_available once (an event trigger a superuser
    made; a sequence, which a rollback does not undo, counts the tries)."""
    _first_night(cli, dbs, roles)
    _per_store(dbs, roles)
    dbs.target.execute("""
        CREATE SEQUENCE public.lock_fault_tries;
        CREATE FUNCTION public.lock_fault() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('public.lock_fault_tries') = 1 THEN
                RAISE EXCEPTION 'injected lock timeout' USING ERRCODE = 'lock_not_available';
            END IF;
        END $$;
        CREATE EVENT TRIGGER lock_fault ON ddl_command_start WHEN TAG IN ('DROP TABLE')
           EXECUTE FUNCTION public.lock_fault();""")
    try:
        _night(dbs.source, 1, rentals=600, inventory=60)
        result = _copy(cli, dbs, "--lock-timeout", "0.5")
    finally:
        dbs.target.execute("DROP EVENT TRIGGER lock_fault")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT last_value FROM public.lock_fault_tries") >= 2
    assert dbs.target.query("SELECT DISTINCT inventory_night, rental_night, sum(n) OVER () "
                            "FROM report.per_store") == [(1, 1, 600)]
