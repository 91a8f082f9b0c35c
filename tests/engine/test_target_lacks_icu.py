"""ICU collations and uuid-ossp (the AdventureWorks case), which the embedded PostgreSQL 18
build lacks: Debian's PostgreSQL 15 is the source, and the target either PostgreSQL 15 (which
has both: they are created) or the embedded 18 (which has neither: the table fails naming
what is missing)."""

from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import Db
from tests.engine.test_cross_version import pg15  # noqa: F401  (the module's server fixture)

ICU_TABLE = """
CREATE SCHEMA coll;
CREATE COLLATION coll.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE public.members (id int PRIMARY KEY, name text COLLATE coll.ci UNIQUE);
INSERT INTO public.members VALUES (1, 'Ann'), (2, 'Bob');
"""
UUID_TABLE = """
CREATE EXTENSION "uuid-ossp";
CREATE TABLE public.orders (id uuid PRIMARY KEY DEFAULT public.uuid_generate_v1(), n int);
INSERT INTO public.orders (n) VALUES (1), (2);
"""


@pytest.fixture
def pg15_source(pg15):  # noqa: F811
    db = Db(pg15.create_database("lacks_src"))
    yield db
    pg15.drop_database("lacks_src")


def _copy(cli, source: Db, target: Db, tables: str):
    return cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables", tables])


def test_icu_collation_and_uuid_ossp_are_created_on_a_target_that_offers_them(
        pg15, pg15_source, cli):  # noqa: F811
    pg15_source.execute(ICU_TABLE + UUID_TABLE)
    target = Db(pg15.create_database("lacks_tgt"))
    try:
        result = _copy(cli, pg15_source, target, "public.members,public.orders")
        assert result.returncode == 0, result.stdout + result.stderr
        shape = ("SELECT collprovider, collisdeterministic, colliculocale FROM pg_collation "
                 "WHERE collname = 'ci'")
        assert target.query(shape) == pg15_source.query(shape) == [("i", False,
                                                                     "und-u-ks-level2")]
        with pytest.raises(psycopg2.errors.UniqueViolation):  # case-insensitive, as the source
            target.execute("INSERT INTO public.members VALUES (3, 'ANN')")
        assert target.scalar("SELECT extversion FROM pg_extension WHERE extname = 'uuid-ossp'") \
            == pg15_source.scalar("SELECT extversion FROM pg_extension WHERE "
                                  "extname = 'uuid-ossp'")
        target.execute("INSERT INTO public.orders (n) VALUES (3)")  # the default works there
    finally:
        pg15.drop_database("lacks_tgt")


def test_a_target_without_icu_or_uuid_ossp_fails_those_tables_naming_them(
        pg15_source, pg_servers, cli):
    pg15_source.execute(ICU_TABLE + UUID_TABLE + "CREATE TABLE public.plain (id int);")
    target = Db(pg_servers[1].create_database("lacks_tgt18"))
    try:
        result = _copy(cli, pg15_source, target, "public.members,public.orders,public.plain")
        assert result.returncode == 1
        errors = {e["table"]: e["error"] for e in result.events_of("table_failed")}
        assert set(errors) == {"public.members", "public.orders"}, result.stdout
        assert errors["public.members"].startswith("needs the collation coll.ci, which the "
                                                   "target cannot provide")
        assert "CREATE COLLATION IF NOT EXISTS coll.ci (provider = icu, locale = " \
               "'und-u-ks-level2', deterministic = false)" in errors["public.members"]
        assert errors["public.orders"].startswith('needs the extension uuid-ossp')
        assert "does not offer it" in errors["public.orders"]
        assert errors["public.orders"].endswith('CREATE EXTENSION IF NOT EXISTS "uuid-ossp" '
                                                "SCHEMA public")
        assert "Traceback" not in result.stderr
    finally:
        pg_servers[1].drop_database("lacks_tgt18")
