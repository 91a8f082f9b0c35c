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
