"""The table-list grammar: every bad list fails before the target is touched."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("tables, message", [
    ("public.nope", "public.nope does not exist on the source"),
    ("x; drop table y", "is not a table name"),
    ("public.t, public.t", "listed twice"),
    ("", "table list is empty"),
    ("  ,  ", "empty item"),
    ('["public.t"', "not valid JSON"),
    ("[]", "table list is empty"),
    ("nosuchschema.*", "matches no table"),
    ("public.v", "is a view"),
    ("public.p_1", "is a partition of public.p"),
    ("public.Caps", 'did you mean public."Caps"'),
])
def test_bad_table_lists_fail_before_touching_the_target(copy, dbs, tables, message):
    dbs.source.execute('CREATE TABLE public.t (id int); CREATE TABLE public."Caps" (id int);'
                       "CREATE VIEW public.v AS SELECT 1 AS x;"
                       "CREATE TABLE public.p (id int) PARTITION BY RANGE (id);"
                       "CREATE TABLE public.p_1 PARTITION OF public.p FOR VALUES FROM (0) TO (9)")
    result = copy(tables)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("nightcopy: error:") and "Traceback" not in result.stderr
    assert result.stdout == ""
    # Not even the ledger was written.
    assert dbs.target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
                             "'nightcopy%'") == 0


def test_globs_match_only_ordinary_and_partitioned_tables(copy, dbs):
    # Everything else a glob could see: views, materialized views, foreign tables, partitions,
    # extension-owned tables, nightcopy's own schemas (a source that is itself a target).
    dbs.source.execute("""
        CREATE TABLE public.plain (id int);
        CREATE TABLE public.parted (id int) PARTITION BY RANGE (id);
        CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (9);
        CREATE VIEW public.a_view AS SELECT 1 AS x;
        CREATE MATERIALIZED VIEW public.a_matview AS SELECT 1 AS x;
        CREATE FOREIGN DATA WRAPPER nc_dummy_fdw;
        CREATE SERVER nc_dummy FOREIGN DATA WRAPPER nc_dummy_fdw;
        CREATE FOREIGN TABLE public.a_foreign (id int) SERVER nc_dummy;
        CREATE EXTENSION hstore;
        CREATE TABLE public.ext_owned (id int);
        ALTER EXTENSION hstore ADD TABLE public.ext_owned;
        CREATE SCHEMA nightcopy; CREATE TABLE nightcopy.runs (id int);
        CREATE SCHEMA nightcopy_stage_public; CREATE TABLE nightcopy_stage_public.plain (id int);
    """)
    for tables in ("*.*", "public.*", "*"):
        result = copy(tables)
        assert result.returncode == 0, result.stderr
        assert sorted(e["table"] for e in result.events_of("table_copied")) == \
            ["public.parted", "public.plain"], tables
    assert copy("nightcopy*.*").returncode == 1  # nothing of nightcopy's own is a table to copy
