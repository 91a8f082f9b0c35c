"""A table the target cannot take fails alone; the others are copied."""

from __future__ import annotations

from tests.pgutil import digests


def test_one_bad_table_fails_alone_and_stays_as_it_was(copy, corpus, dbs):
    dbs.source.execute(corpus)
    assert copy("public.parent_accounts,public.scratch").returncode == 0
    dbs.target.execute("CREATE RULE scratch_rule AS ON DELETE TO public.scratch DO INSTEAD NOTHING")
    before = digests(dbs.target.dsn, ["public.scratch"])
    dbs.source.execute("DELETE FROM public.scratch; DELETE FROM public.child_payments;"
                       "DELETE FROM public.parent_accounts WHERE id > 10")
    result = copy("public.parent_accounts,public.scratch")
    assert result.returncode == 1
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == ["public.scratch"]
    assert "rule scratch_rule is defined on it" in failed[0]["error"]
    assert digests(dbs.target.dsn, ["public.scratch"]) == before
    assert dbs.target.scalar("SELECT count(*) FROM public.parent_accounts") == 10
    summary = result.events_of("run_summary")[0]
    assert summary["status"] == "failed" and summary["failed_tables"] == ["public.scratch"]
    assert "Traceback" not in result.stderr


def test_missing_extension_or_function_fails_that_table_alone(copy, dbs):
    dbs.source.execute("""
        CREATE EXTENSION hstore;
        CREATE TABLE public.attrs (id int PRIMARY KEY, h hstore);
        INSERT INTO public.attrs VALUES (1, 'a=>1, b=>"x y"'), (2, NULL);
        CREATE FUNCTION public.next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' $$;
        CREATE TABLE public.codes (id int, code text DEFAULT public.next_code());
        CREATE TABLE public.plain (id int);
        INSERT INTO public.plain VALUES (1), (2), (3);
    """)
    result = copy("public.attrs,public.codes,public.plain", "--no-create-extensions")
    assert result.returncode == 1
    errors = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert set(errors) == {"public.attrs", "public.codes"}
    assert "CREATE EXTENSION IF NOT EXISTS hstore" in errors["public.attrs"]
    assert "function public.next_code(), which does not exist on the target" in \
        errors["public.codes"]
    assert "create it there, or" in errors["public.codes"]
    assert dbs.target.scalar("SELECT count(*) FROM public.plain") == 3
    assert dbs.target.scalar("SELECT to_regclass('public.attrs')") is None
    # Once the target has what the tables need, they copy.
    dbs.target.execute("CREATE EXTENSION hstore; CREATE FUNCTION public.next_code() RETURNS "
                       "text LANGUAGE sql AS $$ SELECT 'c' $$")
    again = copy("public.attrs,public.codes")
    assert again.returncode == 0, again.stderr
    assert digests(dbs.target.dsn, ["public.attrs"]) == digests(dbs.source.dsn, ["public.attrs"])
