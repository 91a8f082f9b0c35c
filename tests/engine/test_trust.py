"""The trust check of issue 12 (nightcopy.engine.trust, source_catalog/expression_calls): what
load-time expressions may call, the `trust` option that widens it, and the siblings of the
hostile-source tests (operators, nested domains, exclusion operators, partitions' own checks,
extensions whose target copy is not the extension's). The copies run as a superuser: these
tests check what is refused and allowed, tests/security that nothing runs as a worker."""

from __future__ import annotations

import pytest

from nightcopy.engine.table_model import ExpressionCall
from nightcopy.engine.trust import parse_trust
from nightcopy.errors import ConfigError

OK_FUNCTION = """
CREATE SCHEMA IF NOT EXISTS app;
CREATE FUNCTION app.ok(i integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i > 0';"""


def _call(schema: str, name: str) -> ExpressionCall:
    return ExpressionCall("the constraint c of app.t", "function", f"{schema}.{name}(integer)",
                          schema, name, None)


def test_trust_entries_name_functions_or_whole_schemas():
    trust = parse_trust(' app.ok , util.* , "Odd"."Name" ')
    assert trust.covers(_call("app", "ok"))
    assert not trust.covers(_call("app", "ok2"))
    assert trust.covers(_call("util", "anything"))
    assert trust.covers(_call("Odd", "Name"))
    assert not trust.covers(_call("odd", "name"))
    assert not parse_trust(None).covers(_call("app", "ok"))


@pytest.mark.parametrize("value, problem", [
    ("ok", "is not a function name"), ("app.ok,", "is not a function name"),
    ("a.b.c", "is not a function name"), ("*.ok", "glob in its schema"),
    ('app."ok', "is not a function name"),
])
def test_bad_trust_entries_are_refused_with_the_fix(value, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_trust(value)
    assert "schema." in str(caught.value)


def test_a_bad_trust_list_is_a_one_line_error_before_connecting(copy):
    result = copy("app.t", "--trust", "ok")
    assert result.returncode == 1
    assert "--trust item 'ok' is not a function name" in result.stderr
    assert "Traceback" not in result.stderr


def _failed(result, table: str) -> str:
    assert result.returncode == 1, result.stderr
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == [table], result.stdout
    return failed[0]["error"]


def test_a_trusted_function_is_allowed_and_an_untrusted_one_refused(copy, dbs):
    dbs.source.execute(OK_FUNCTION + """
        CREATE TABLE app.t (id int PRIMARY KEY CHECK (app.ok(id)));
        CREATE TABLE app.plain (id int PRIMARY KEY);
        INSERT INTO app.t VALUES (1), (2); INSERT INTO app.plain VALUES (1);""")
    dbs.target.execute(OK_FUNCTION)
    error = _failed(copy("app.t, app.plain"), "app.t")
    assert "the constraint t_id_check of app.t calls the function app.ok(integer)" in error
    assert "--trust (NIGHTCOPY_TRUST, options.trust) app.ok" in error
    # The other table of the run is copied; the refused one never reached the target.
    assert dbs.target.scalar("SELECT count(*) FROM app.plain") == 1
    assert dbs.target.scalar("SELECT to_regclass('app.t')") is None
    result = copy("app.t", "--trust", "app.ok")
    assert result.returncode == 0, result.stderr
    # The target's app.ok was not created by nightcopy: a schema-wide trust does not reach it
    # (only its own name does: target_catalog/functions).
    assert "was not created by nightcopy" in _failed(copy("app.t", "--trust", "app.*"), "app.t")
    result = copy("app.t", env={"NIGHTCOPY_TRUST": "app.ok"})
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM app.t") == 2


def test_a_trusted_function_the_target_lacks_is_copied_from_the_source(copy, dbs):
    """It used to fail ("must already exist"); copying under trust is issue 13's
    (tests/engine/test_target_lacks.py has the rest)."""
    dbs.source.execute(OK_FUNCTION + """
        CREATE TABLE app.t (id int PRIMARY KEY CHECK (app.ok(id))); INSERT INTO app.t VALUES (1);""")
    dbs.target.execute("CREATE SCHEMA app")
    result = copy("app.t", "--trust", "app.ok")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM app.t") == 1
    assert dbs.target.scalar("SELECT to_regprocedure('app.ok(integer)') IS NOT NULL")


def test_user_defined_operators_are_refused_naming_the_operator(copy, dbs):
    dbs.source.execute(OK_FUNCTION + """
        CREATE OPERATOR app.=== (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int);
        CREATE TABLE app.t (id int PRIMARY KEY, CHECK (id OPERATOR(app.===) id));
        INSERT INTO app.t VALUES (1);""")
    error = _failed(copy("app.t"), "app.t")
    assert "the operator app.===(integer,integer)" in error


def test_domains_nested_in_arrays_and_domains_are_followed(copy, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE DOMAIN app.stalls AS int CHECK (pg_catalog.pg_sleep(0) IS NOT NULL);
        CREATE DOMAIN app.outer_dom AS app.stalls CHECK (VALUE > 0);
        CREATE TABLE app.t (id int PRIMARY KEY, v app.outer_dom[]);
        INSERT INTO app.t VALUES (1, ARRAY[1]);""")
    error = _failed(copy("app.t"), "app.t")
    assert "the column v of app.t" in error and "pg_sleep" in error


def test_a_partitions_own_check_is_covered(copy, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE TABLE app.p (id int, note text) PARTITION BY RANGE (id);
        CREATE TABLE app.p_low PARTITION OF app.p FOR VALUES FROM (0) TO (100);
        ALTER TABLE app.p_low ADD CONSTRAINT low_ok CHECK (pg_catalog.random() >= 0);
        INSERT INTO app.p VALUES (1, 'a');""")
    error = _failed(copy("app.p"), "app.p")
    assert "the constraint low_ok of app.p_low calls the function pg_catalog.random()" in error


def test_stable_built_ins_need_trust_and_volatile_defaults_do_not(copy, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE TABLE app.t (id int PRIMARY KEY, at timestamptz DEFAULT pg_catalog.now()
                            CHECK (at <= pg_catalog.now()));
        INSERT INTO app.t (id) VALUES (1);""")
    assert "pg_catalog.now()" in _failed(copy("app.t"), "app.t")
    result = copy("app.t", "--trust", "pg_catalog.now")
    assert result.returncode == 0, result.stderr


def test_an_extension_function_whose_target_namesake_is_not_the_extensions_is_refused(copy, dbs):
    dbs.source.execute("""
        CREATE EXTENSION fuzzystrmatch SCHEMA public; CREATE SCHEMA app;
        CREATE TABLE app.t (id int PRIMARY KEY, nick text
                            CHECK (public.levenshtein(nick, 'x') >= 0));
        INSERT INTO app.t VALUES (1, 'a');""")
    # Not the extension: a function someone wrote under the extension's name.
    dbs.target.execute("CREATE FUNCTION public.levenshtein(text, text) RETURNS int "
                       "LANGUAGE sql IMMUTABLE AS 'SELECT 0'")
    error = _failed(copy("app.t"), "app.t")
    assert "public.levenshtein(text, text) of the extension fuzzystrmatch" in error
    assert "CREATE EXTENSION fuzzystrmatch on the target" in error
    dbs.target.execute("DROP FUNCTION public.levenshtein(text, text)")
    error = _failed(copy("app.t", "--no-create-extensions"), "app.t")
    assert "needs the extension fuzzystrmatch" in error
    assert "CREATE EXTENSION IF NOT EXISTS fuzzystrmatch" in error
    result = copy("app.t")  # the worker creates the extension: its function is then the one
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM pg_extension WHERE extname = "
                             "'fuzzystrmatch'") == 1


def test_row_comparisons_and_exclusion_operators_are_read_too(copy, dbs):
    dbs.source.execute("""
        CREATE SCHEMA app;
        CREATE FUNCTION app.lt(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE
            AS 'SELECT a < b';
        CREATE OPERATOR app.<<< (FUNCTION = app.lt, LEFTARG = int, RIGHTARG = int);
        CREATE TABLE app.rows (a int, b int, CHECK ((a, b) < (b, a) OR a = b));
        CREATE TABLE app.excl (a int, EXCLUDE USING btree (a WITH OPERATOR(pg_catalog.=)),
                               CHECK (a OPERATOR(app.<<<) 10));
        INSERT INTO app.rows VALUES (1, 1); INSERT INTO app.excl VALUES (1);""")
    result = copy("app.rows, app.excl")
    assert result.returncode == 1, result.stderr
    failed = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    # Row comparisons of built-ins are fine; the operator and its function are named.
    assert list(failed) == ["app.excl"], result.stdout
    assert "calls the operator app.<<<(integer,integer) (and 1 more)" in failed["app.excl"]
    assert failed["app.excl"].endswith(' app."<<<",app.lt')
    result = copy("app.excl", "--trust", 'app."<<<",app.lt')
    assert "does not exist on the target" in result.events_of("table_failed")[0]["error"]
