"""The hostile-source world of issue 12: three roles on the embedded servers of tests/conftest.py.

- the **worker** (non-superuser, LOGIN on both servers): on the source USAGE on the copied
  schema `app` and SELECT on every table created there; on the target CREATE on the database
  and USAGE + CREATE on the copied schema `app`, and SELECT on `private.salaries`, a table
  only it may read (the prize every attack goes for).
- the **attacker** (source side, LOGIN): may create and alter tables in `app` on the source, as
  an application developer, a migration or a compromised application role can.
- the **analyst** (target side, LOGIN, low-privileged): owns the schema `analytics` on the
  target and may read what it is granted. It plants code there under the names the
  application uses on the source (`analytics.ok`, `analytics.norm`, `analytics.bucket`: benign
  on the source, hostile on the target), and a table `analytics.loot` where that code writes
  who ran it (`current_user`) and the private rows, when it may read them.

Roles are per test (their names carry the test's database name), because grants between roles
are cluster-wide and several tests need ones (membership, CREATE on the database) the others
must not have. Every copy runs the real command line as the worker, DSNs in the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from tests.conftest import CliResult, Db, DbPair, run_cli

# The private rows on the target: readable by the worker only.
SECRET = "s3cr3tsalary42"

SOURCE_SETUP = """
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO {worker}, {attacker};
GRANT CREATE ON SCHEMA app TO {attacker};
ALTER DEFAULT PRIVILEGES FOR ROLE {attacker} IN SCHEMA app GRANT SELECT ON TABLES TO {worker};
ALTER DEFAULT PRIVILEGES FOR ROLE {attacker} IN SCHEMA app GRANT SELECT ON SEQUENCES TO {worker};
-- The application's own helper functions: benign on the source.
CREATE SCHEMA analytics;
GRANT USAGE ON SCHEMA analytics TO PUBLIC;
CREATE FUNCTION analytics.ok(n integer) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT true $$;
CREATE FUNCTION analytics.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower(t) $$;
CREATE FUNCTION analytics.bucket(n integer) RETURNS integer LANGUAGE sql IMMUTABLE
    AS $$ SELECT n $$;
"""

TARGET_SETUP = """
GRANT CREATE ON DATABASE {db} TO {worker};
CREATE SCHEMA app;
GRANT USAGE, CREATE ON SCHEMA app TO {worker};
GRANT USAGE ON SCHEMA app TO {analyst};
CREATE SCHEMA private;
GRANT USAGE ON SCHEMA private TO PUBLIC;
CREATE TABLE private.salaries (who text, secret text);
INSERT INTO private.salaries VALUES ('ceo', '{secret}');
GRANT SELECT ON private.salaries TO {worker};
CREATE SCHEMA analytics AUTHORIZATION {analyst};
"""

# Planted by the analyst, as the analyst: code that runs with whatever role calls it.
ANALYST_TRAP = """
GRANT USAGE ON SCHEMA analytics TO PUBLIC;
CREATE TABLE analytics.loot (who text, what text);
GRANT INSERT, SELECT ON analytics.loot TO PUBLIC;
CREATE FUNCTION analytics.steal() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics.loot
    SELECT current_user,
           CASE WHEN pg_catalog.has_table_privilege('private.salaries', 'SELECT')
                THEN (SELECT string_agg(secret, ',') FROM private.salaries) END;
END $$;
-- Same names and signatures as the application's functions on the source; declared IMMUTABLE
-- so that index, generated-column and partition expressions accept them. (An immutable
-- function may call a volatile one: PostgreSQL does not check volatility transitively.)
CREATE FUNCTION analytics.ok(n integer) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM analytics.steal(); RETURN true; END $$;
CREATE FUNCTION analytics.norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM analytics.steal(); RETURN lower(t); END $$;
CREATE FUNCTION analytics.bucket(n integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM analytics.steal(); RETURN n; END $$;
"""


def as_role(db: Db, role: str) -> Db:
    """The same database, logged in as `role` (no password: the test servers trust local users)."""
    params = psycopg2.extensions.parse_dsn(db.dsn)
    params.pop("password", None)
    params["user"] = role
    return Db(psycopg2.extensions.make_dsn(**params))


def _dbname(db: Db) -> str:
    return psycopg2.extensions.parse_dsn(db.dsn)["dbname"]


def _ensure_role(admin: Db, role: str) -> None:
    # The source and target may be one cluster (NIGHTCOPY_TEST_*_DSN): create once.
    if not admin.scalar("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)):
        admin.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')


def _drop_role(admin: Db, role: str) -> None:
    # Called once the test's databases are gone: the role owns nothing any more.
    admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@dataclass
class World:
    """One test's source and target databases, its three roles and its report directory."""

    dbs: DbPair
    worker: str
    attacker: str
    analyst: str
    tmp: Path

    @property
    def source(self) -> Db:  # superuser: for setting the scene and looking at the result
        return self.dbs.source

    @property
    def target(self) -> Db:
        return self.dbs.target

    @property
    def attacker_db(self) -> Db:
        return as_role(self.source, self.attacker)

    @property
    def analyst_db(self) -> Db:
        return as_role(self.target, self.analyst)

    def as_worker_on_target(self) -> Db:
        return as_role(self.target, self.worker)

    @property
    def target_dbname(self) -> str:
        return _dbname(self.target)

    @property
    def worker_source_dsn(self) -> str:
        return as_role(self.source, self.worker).dsn

    @property
    def worker_target_dsn(self) -> str:
        return as_role(self.target, self.worker).dsn

    @property
    def report_dir(self) -> Path:
        return self.tmp / "reports"

    def plant_analyst_trap(self) -> None:
        self.analyst_db.execute(ANALYST_TRAP)

    def copy(self, tables: str, *args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> CliResult:
        """`nightcopy copy` as the worker (DSNs in the environment, a report file beside)."""
        full_env = {"NIGHTCOPY_SOURCE_DSN": self.worker_source_dsn,
                    "NIGHTCOPY_TARGET_DSN": self.worker_target_dsn, **(env or {})}
        argv = ["copy", "--tables", tables, "--jobs", "1",
                "--report-uri", f"file://{self.report_dir}", *args]
        return run_cli(argv, env=full_env, timeout=timeout)

    def loot(self) -> list[tuple[str, str | None]]:
        """What the analyst's code recorded: (the role that ran it, the private rows it read)."""
        return self.target.query("SELECT who, what FROM analytics.loot ORDER BY 1, 2")

    def ran_as_worker(self) -> list[tuple[str, str | None]]:
        return [row for row in self.loot() if row[0] == self.worker]

    def ledger_text(self) -> str:
        if not self.target.scalar("SELECT to_regclass('nightcopy.table_results') IS NOT NULL"):
            return ""
        return "\n".join(str(r) for r in self.target.query(
            "SELECT r::text FROM nightcopy.runs r UNION ALL "
            "SELECT t::text FROM nightcopy.table_results t"))

    def reports_text(self) -> str:
        if not self.report_dir.exists():
            return ""
        return "\n".join(p.read_text() for p in sorted(self.report_dir.rglob("*.json")))


@pytest.fixture
def world(dbs: DbPair, pg_servers, tmp_path: Path) -> Iterator[World]:
    suffix = _dbname(dbs.source).removeprefix("src_")
    w = World(dbs, worker=f"{suffix}_worker", attacker=f"{suffix}_attacker",
              analyst=f"{suffix}_analyst", tmp=tmp_path)
    source_admin, target_admin = dbs.source, dbs.target
    names = {"worker": f'"{w.worker}"', "attacker": f'"{w.attacker}"',
             "analyst": f'"{w.analyst}"', "db": f'"{_dbname(dbs.target)}"', "secret": SECRET}
    try:
        for role in (w.worker, w.attacker):
            _ensure_role(source_admin, role)
        for role in (w.worker, w.analyst):
            _ensure_role(target_admin, role)
        source_admin.execute(SOURCE_SETUP.format(**names))
        target_admin.execute(TARGET_SETUP.format(**names))
        yield w
    finally:
        # Roles outlive databases: drop the test's databases first, then its roles.
        src_server, tgt_server = pg_servers
        src_server.drop_database(_dbname(dbs.source))
        tgt_server.drop_database(_dbname(dbs.target))
        for server in (src_server, tgt_server):
            for role in (w.worker, w.attacker, w.analyst):
                _drop_role(Db(server.admin_dsn), role)

