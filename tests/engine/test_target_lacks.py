"""What a table needs and the target lacks (issue 13): extensions (created as a non-superuser
worker when trusted, else named in the CREATE EXTENSION to run), user collations, custom base
types, and definitions that name their own table (a generated column `tableoid =
't'::regclass`, a CHECK, a default).

The target side runs as a worker role that is not a superuser (CREATE on the database and on
schema public), as in production; the source is read as the test's superuser.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2.extensions
import pytest

from tests.conftest import Db, DbPair
from tests.pgutil import digests


def _as(db: Db, role: str) -> Db:
    params = psycopg2.extensions.parse_dsn(db.dsn)
    params.pop("password", None)
    params["user"] = role
    return Db(psycopg2.extensions.make_dsn(**params))


@pytest.fixture
def worker(dbs: DbPair) -> Iterator[Db]:
    """The target as a non-superuser worker role with CREATE on the database and on public."""
    dbname = psycopg2.extensions.parse_dsn(dbs.target.dsn)["dbname"]
    role = f"{dbname}_w"
    dbs.target.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    dbs.target.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO "{role}";'
                       f'GRANT CREATE ON SCHEMA public TO "{role}"')
    try:
        yield _as(dbs.target, role)
    finally:
        dbs.target.execute(f'DROP OWNED BY "{role}" CASCADE')
        dbs.target.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM "{role}"')
        dbs.target.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def copy_as_worker(cli, dbs, worker):
    def run(tables: str, *extra: str, env: dict[str, str] | None = None):
        return cli(["copy", "--source", dbs.source.dsn, "--target", worker.dsn, "--tables",
                    tables, "--jobs", "1", *extra], env=env)
    return run


def _failed(result, table: str) -> str:
    assert result.returncode == 1, result.stderr
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == [table], result.stdout
    assert "Traceback" not in result.stderr
    return failed[0]["error"]


# ------------------------------------------------------------------------------ extensions

EXTENSION_TABLES = """
CREATE EXTENSION citext;
CREATE EXTENSION hstore;
CREATE EXTENSION fuzzystrmatch;
-- A column type and its unique index (the extension's operator class).
CREATE TABLE public.people (id int PRIMARY KEY, email public.citext NOT NULL UNIQUE);
INSERT INTO public.people VALUES (1, 'Ann@Example.com'), (2, 'bob@example.com');
-- A GiST index with the extension's operator class.
CREATE TABLE public.tagged (id int PRIMARY KEY, tags public.hstore);
CREATE INDEX tagged_tags ON public.tagged USING gist (tags);
INSERT INTO public.tagged VALUES (1, 'a=>1'), (2, 'b=>2');
-- Only a default needs the extension (the AdventureWorks case: uuid_generate_v1()).
CREATE TABLE public.coded (id int PRIMARY KEY,
                           code text DEFAULT public.soundex('nightcopy'::text));
INSERT INTO public.coded VALUES (1, 'x');
"""


def test_trusted_extensions_are_created_by_a_non_superuser_worker(copy_as_worker, dbs, worker):
    """On the code before: people failed on its type, tagged on its operator class (named the
    extension, but did not create it), coded on "function public.soundex does not exist"."""
    dbs.source.execute(EXTENSION_TABLES)
    tables = ["public.coded", "public.people", "public.tagged"]
    result = copy_as_worker(",".join(tables))
    assert result.returncode == 0, result.stdout + result.stderr
    versions = dict(dbs.source.query("SELECT extname, extversion FROM pg_extension"))
    on_target = dict(worker.query("SELECT e.extname, e.extversion FROM pg_extension e"))
    for name in ("citext", "hstore", "fuzzystrmatch"):
        assert on_target[name] == versions[name]
    assert digests(worker.dsn, tables) == digests(dbs.source.dsn, tables)
    warnings = " ".join(e["message"] for e in result.events_of("warning"))
    assert "created the extension citext on the target" in warnings
    # The case-insensitive unique index came along: a differently-cased duplicate is refused.
    with pytest.raises(psycopg2.errors.UniqueViolation):
        dbs.target.execute("INSERT INTO public.people VALUES (3, 'ann@example.COM')")
    # Again: the extensions are there now; nothing is created twice.
    again = copy_as_worker(",".join(tables))
    assert again.returncode == 0, again.stderr
    assert "created the extension" not in again.stdout


def test_an_untrusted_extension_fails_the_table_naming_the_create_extension(copy_as_worker,
                                                                              dbs):
    """bloom is not trusted: a role with CREATE on the database may not create it. Its index
    access method and operator class are what the table needs."""
    dbs.source.execute("""
        CREATE EXTENSION bloom;
        CREATE TABLE public.sparse (a int, b int);
        CREATE INDEX sparse_bloom ON public.sparse USING bloom (a, b);
        INSERT INTO public.sparse VALUES (1, 2);
        CREATE TABLE public.plain (id int PRIMARY KEY);""")
    version = dbs.source.scalar("SELECT extversion FROM pg_extension WHERE extname = 'bloom'")
    result = copy_as_worker("public.sparse,public.plain")
    error = _failed(result, "public.sparse")
    assert "needs the extension bloom" in error
    assert "may not create it" in error
    assert error.endswith("run as an administrator on the target: CREATE EXTENSION IF NOT "
                          f"EXISTS bloom VERSION '{version}' SCHEMA public")
    assert dbs.target.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'bloom'") == 0


def test_no_create_extensions_names_the_statement_instead(copy_as_worker, dbs):
    dbs.source.execute(EXTENSION_TABLES)
    version = dbs.source.scalar("SELECT extversion FROM pg_extension WHERE extname = 'citext'")
    result = copy_as_worker("public.people", "--no-create-extensions")
    error = _failed(result, "public.people")
    assert "creating extensions is off (--no-create-extensions)" in error
    assert error.endswith(f"CREATE EXTENSION IF NOT EXISTS citext VERSION '{version}' "
                          "SCHEMA public")
    assert dbs.target.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'citext'") == 0
    # A default's extension too (the variable sets the option as the flag does).
    coded = copy_as_worker("public.coded", env={"NIGHTCOPY_CREATE_EXTENSIONS":
                                                               "false"})
    assert _failed(coded, "public.coded").startswith("needs the extension fuzzystrmatch")
    assert coded.returncode == 1


def test_an_extension_in_its_own_schema_is_created_there(copy_as_worker, dbs, worker):
    dbs.source.execute("""
        CREATE SCHEMA ext;
        CREATE EXTENSION citext SCHEMA ext;
        CREATE TABLE public.emails (id int PRIMARY KEY, email ext.citext);
        INSERT INTO public.emails VALUES (1, 'A@b.c');""")
    result = copy_as_worker("public.emails")
    assert result.returncode == 0, result.stdout + result.stderr
    assert worker.scalar("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                         "ON n.oid = e.extnamespace WHERE e.extname = 'citext'") == "ext"
    assert worker.scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                         "attrelid = 'public.emails'::regclass AND attname = 'email'") == \
        "ext.citext"


# ------------------------------------------------------------------------------ collations

def test_user_collations_are_created_with_their_provider_and_locale(copy_as_worker, dbs,
                                                                     worker):
    """A column's, an index's, a CHECK's and a domain's collation (builtin and libc providers:
    the embedded servers have no ICU; ICU is tests/engine/test_target_lacks_icu.py)."""
    dbs.source.execute("""
        CREATE SCHEMA coll;
        CREATE COLLATION coll.bytewise (provider = builtin, locale = 'C.UTF-8');
        CREATE COLLATION coll.posix (provider = libc, lc_collate = 'POSIX', lc_ctype = 'POSIX');
        CREATE COLLATION coll.in_check (provider = libc, locale = 'C');
        CREATE COLLATION coll.in_index (provider = libc, locale = 'C');
        CREATE COLLATION coll.in_domain (provider = builtin, locale = 'C');
        CREATE DOMAIN public.label AS text COLLATE coll.in_domain;
        CREATE TABLE public.names (id int PRIMARY KEY, a text COLLATE coll.bytewise,
                                   b text COLLATE coll.posix, c public.label, d text,
                                   CHECK (d > 'a' COLLATE coll.in_check));
        CREATE INDEX names_d ON public.names (d COLLATE coll.in_index);
        INSERT INTO public.names VALUES (1, 'x', 'y', 'z', 'b');""")
    result = copy_as_worker("public.names")
    assert result.returncode == 0, result.stdout + result.stderr
    shape = ("SELECT c.collname, c.collprovider, c.collisdeterministic, c.collcollate, "
             "c.collctype, COALESCE(to_jsonb(c) ->> 'colllocale', '') FROM pg_collation c "
             "JOIN pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname = 'coll' "
             "ORDER BY 1")
    assert worker.query(shape) == dbs.source.query(shape)
    assert worker.scalar("SELECT pg_get_indexdef('public.names_d'::regclass)") == \
        dbs.source.scalar("SELECT pg_get_indexdef('public.names_d'::regclass)")


# ---------------------------------------------------------------------- custom base types

def test_a_custom_base_type_fails_naming_it_and_its_module(copy, dbs):
    dbs.source.execute("""
        CREATE TYPE public.tag;
        CREATE FUNCTION public.tag_in(cstring) RETURNS public.tag LANGUAGE internal
            IMMUTABLE STRICT AS 'textin';
        CREATE FUNCTION public.tag_out(public.tag) RETURNS cstring LANGUAGE internal
            IMMUTABLE STRICT AS 'textout';
        CREATE TYPE public.tag (INPUT = public.tag_in, OUTPUT = public.tag_out,
                                LIKE = pg_catalog.text);
        CREATE TABLE public.tagged (id int PRIMARY KEY, t public.tag);""")
    error = _failed(copy("public.tagged"), "public.tagged")
    assert error == ("type public.tag is a custom base type (its input function "
                     "public.tag_in(cstring) is written in internal) that the target lacks: "
                     "install the module (or the extension) that provides it on the target's "
                     "server and create the type there first")


# ------------------------------------------------------------- definitions naming their table

SELF_NAMING = """
CREATE SCHEMA app;
CREATE TABLE app.gtest_tableoid (
    a int PRIMARY KEY,
    b boolean GENERATED ALWAYS AS (tableoid = 'app.gtest_tableoid'::regclass) STORED,
    me text DEFAULT ('app.gtest_tableoid'::regclass)::text,
    CONSTRAINT is_me CHECK (tableoid = 'app.gtest_tableoid'::regclass));
INSERT INTO app.gtest_tableoid (a) VALUES (1), (2);
"""


def test_a_generated_column_check_and_default_naming_their_own_table(copy, dbs):
    """On the code before: "relation app.gtest_tableoid does not exist" on a first copy (the
    staged table lives in nightcopy_stage_app), and on later ones the definitions would name
    the old table the swap drops."""
    dbs.source.execute(SELF_NAMING)
    definition = ("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
                  "WHERE d.adrelid = 'app.gtest_tableoid'::regclass ORDER BY d.adnum")
    check = ("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'is_me'")
    for attempt in (1, 2):  # a first copy, then a swap over the existing table
        result = copy("app.gtest_tableoid")
        assert result.returncode == 0, (attempt, result.stdout + result.stderr)
        assert dbs.target.query("SELECT a, b, me FROM app.gtest_tableoid ORDER BY a") == \
            [(1, True, "app.gtest_tableoid"), (2, True, "app.gtest_tableoid")]
        assert dbs.target.query(definition) == dbs.source.query(definition)
        assert dbs.target.scalar(check) == dbs.source.scalar(check)
        dbs.target.execute("INSERT INTO app.gtest_tableoid (a) VALUES (3);"
                           "DELETE FROM app.gtest_tableoid WHERE a = 3")
    assert dbs.target.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage%'") == 0


# ----------------------------------------------------------------- user functions under trust

FUNCTIONS = """
CREATE SCHEMA app;
CREATE FUNCTION app.ok(i integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i > 0';
CREATE FUNCTION app.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(t)';
CREATE SEQUENCE app.order_no;
CREATE FUNCTION app.next_order_no() RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN RETURN nextval('app.order_no'); END $$;
CREATE TABLE app.orders (id int PRIMARY KEY CHECK (app.ok(id)),
                         no bigint DEFAULT app.next_order_no(), name text);
CREATE INDEX orders_norm ON app.orders (app.norm(name));
INSERT INTO app.orders (id, name) VALUES (1, 'A'), (2, 'B');
"""


def _public_may_execute(db: Db, signature: str) -> bool:
    return db.scalar("SELECT has_function_privilege('public', %s::regprocedure, 'EXECUTE')",
                     (signature,))


def test_trusted_functions_are_copied_with_execute_revoked_from_public(copy_as_worker, dbs,
                                                                         worker):
    """A CHECK's, an index expression's and a default's function (on the code before: "does
    not exist on the target ... nightcopy never creates or replaces functions")."""
    dbs.source.execute(FUNCTIONS)
    dbs.target.execute("CREATE SEQUENCE public.unrelated")  # the target is not empty
    result = copy_as_worker("app.orders", "--trust", "app.*")
    assert result.returncode == 0, result.stdout + result.stderr
    assert digests(worker.dsn, ["app.orders"]) == digests(dbs.source.dsn, ["app.orders"])
    for signature in ("app.ok(integer)", "app.norm(text)", "app.next_order_no()"):
        definition = f"SELECT pg_get_functiondef('{signature}'::regprocedure)"
        assert worker.scalar(definition) == dbs.source.scalar(definition)
        assert not _public_may_execute(worker, signature)
        assert worker.scalar(f"SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = "
                             f"'{signature}'::regprocedure") == worker.scalar("SELECT current_user")
    warnings = " ".join(e["message"] for e in result.events_of("warning"))
    assert "copied the trusted function app.ok(integer)" in warnings
    # The next night refreshes nightcopy's own copies (a changed source body reaches it).
    dbs.source.execute("CREATE OR REPLACE FUNCTION app.ok(i integer) RETURNS boolean "
                       "LANGUAGE sql IMMUTABLE AS 'SELECT i >= 0'")
    again = copy_as_worker("app.orders", "--trust", "app.*")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "i >= 0" in worker.scalar("SELECT pg_get_functiondef('app.ok(integer)'::regprocedure)")


def test_an_untrusted_function_of_a_default_names_it_and_how_to_trust_it(copy_as_worker, dbs):
    dbs.source.execute(FUNCTIONS + """
        CREATE TABLE app.numbered (id int PRIMARY KEY, no bigint DEFAULT app.next_order_no());""")
    error = _failed(copy_as_worker("app.numbered"), "app.numbered")
    assert error.startswith("the default of the column no of app.numbered calls the function "
                            "app.next_order_no(), which does not exist on the target")
    assert error.endswith("--trust (NIGHTCOPY_TRUST, options.trust) app.next_order_no")


def test_a_security_definer_function_is_not_copied(copy_as_worker, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE FUNCTION app.ok(i integer) RETURNS boolean LANGUAGE sql IMMUTABLE
            SECURITY DEFINER AS 'SELECT i > 0';
        CREATE TABLE app.t (id int PRIMARY KEY CHECK (app.ok(id)));""")
    error = _failed(copy_as_worker("app.t", "--trust", "app.ok"), "app.t")
    assert "app.ok(integer)" in error and "SECURITY DEFINER" in error
    assert "copies only SECURITY INVOKER functions" in error
    assert dbs.target.scalar("SELECT to_regprocedure('app.ok(integer)')") is None


def test_a_target_function_nightcopy_did_not_create_is_used_only_when_trusted_by_name(
        copy_as_worker, dbs, worker):
    dbs.source.execute(FUNCTIONS)
    # Created on the target by another role (the test's superuser), with its own body.
    dbs.target.execute("CREATE SCHEMA app; GRANT CREATE, USAGE ON SCHEMA app TO PUBLIC;"
                       "CREATE FUNCTION app.ok(i integer) RETURNS boolean LANGUAGE sql "
                       "IMMUTABLE AS 'SELECT i > -1'")
    error = _failed(copy_as_worker("app.orders", "--trust", "app.*"), "app.orders")
    assert "app.ok(integer), which exists on the target but was not created by nightcopy" in error
    assert "--trust (NIGHTCOPY_TRUST, options.trust) app.ok" in error
    result = copy_as_worker("app.orders", "--trust", "app.ok,app.norm,app.next_order_no")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "i > -1" in dbs.target.scalar("SELECT pg_get_functiondef('app.ok(integer)'::"
                                         "regprocedure)")  # used, never replaced


def test_a_copied_function_brings_its_types_and_the_functions_it_calls(copy_as_worker, dbs,
                                                                        worker):
    """A standard-body SQL function records what it calls (pg_depend): the callee is copied
    first, and the domain it takes is created with the types."""
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE DOMAIN app.pos AS int CHECK (VALUE > 0);
        CREATE FUNCTION app.base(i int) RETURNS boolean LANGUAGE sql IMMUTABLE
            BEGIN ATOMIC SELECT i < 1000; END;
        CREATE FUNCTION app.ok2(i app.pos) RETURNS boolean LANGUAGE sql IMMUTABLE
            BEGIN ATOMIC SELECT app.base(i); END;
        CREATE TABLE app.t2 (id int PRIMARY KEY CHECK (app.ok2(id::app.pos)));
        INSERT INTO app.t2 VALUES (1), (2);""")
    result = copy_as_worker("app.t2", "--trust", "app.*")
    assert result.returncode == 0, result.stdout + result.stderr
    assert worker.scalar("SELECT count(*) FROM app.t2") == 2
    for signature in ("app.base(integer)", "app.ok2(app.pos)"):
        assert worker.scalar("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)), signature


def test_a_function_taking_the_tables_own_row_type_fails_naming_why(copy_as_worker, dbs):
    """pgregress's check_con_tbl: the function cannot exist before the table it takes."""
    dbs.source.execute("""
        CREATE TABLE public.check_con_tbl (f1 int);
        CREATE FUNCTION public.check_con_function(public.check_con_tbl) RETURNS boolean
            LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN $1.f1 > 0; END $$;
        ALTER TABLE public.check_con_tbl ADD CHECK (public.check_con_function(check_con_tbl.*));
        INSERT INTO public.check_con_tbl VALUES (1);""")
    error = _failed(copy_as_worker("public.check_con_tbl", "--trust",
                                   "public.check_con_function"), "public.check_con_tbl")
    assert "takes or returns the row type of the table public.check_con_tbl" in error
    assert dbs.target.scalar("SELECT to_regtype('public.check_con_tbl')") is None


def test_a_partitions_own_check_naming_the_partition(copy, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE TABLE app.p (id int, note text) PARTITION BY RANGE (id);
        CREATE TABLE app.p_low PARTITION OF app.p FOR VALUES FROM (0) TO (100);
        ALTER TABLE app.p_low ADD CONSTRAINT is_low CHECK (tableoid = 'app.p_low'::regclass);
        INSERT INTO app.p VALUES (1, 'a'), (2, 'b');""")
    check = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'is_low'"
    for attempt in (1, 2):
        result = copy("app.p")
        assert result.returncode == 0, (attempt, result.stdout + result.stderr)
        assert dbs.target.scalar("SELECT count(*) FROM app.p_low") == 2
        assert dbs.target.scalar(check) == dbs.source.scalar(check)
