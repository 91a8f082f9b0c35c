"""A trusted function that takes its table's own row type, with a PostgreSQL 15 target
(pgregress's check_con_tbl): that table fails with one line naming the function and what to
do; the run goes on with the others."""

from __future__ import annotations

from tests.conftest import Db
from tests.engine.test_cross_version import pg15  # noqa: F401 - the PostgreSQL 15 fixture

SOURCE = """
CREATE TABLE public.check_con_tbl (f1 int);
CREATE FUNCTION public.check_con_function(public.check_con_tbl) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN $1.f1 > 0; END $$;
ALTER TABLE public.check_con_tbl ADD CHECK (public.check_con_function(check_con_tbl.*));
INSERT INTO public.check_con_tbl VALUES (1);
CREATE TABLE public.plain (id int);
INSERT INTO public.plain VALUES (1), (2);
"""


def test_pg15_target_fails_only_the_table_whose_function_takes_its_row_type(pg15, cli):  # noqa: F811
    source = Db(pg15.create_database("rowtype_src"))
    target = Db(pg15.create_database("rowtype_tgt"))
    source.execute(SOURCE)
    result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables",
                  "public.check_con_tbl, public.plain", "--trust",
                  "public.check_con_function"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    failed = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert list(failed) == ["public.check_con_tbl"], result.stdout + result.stderr
    assert "public.check_con_function(public.check_con_tbl)" in failed["public.check_con_tbl"]
    assert "row type of the table public.check_con_tbl" in failed["public.check_con_tbl"]
    assert [e["table"] for e in result.events_of("table_copied")] == ["public.plain"]
    assert target.scalar("SELECT count(*) FROM public.plain") == 2
