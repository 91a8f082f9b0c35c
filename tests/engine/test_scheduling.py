"""The invocation's tables are started largest first (so the biggest one does not start last and
stretch the night), whatever order the list gives them in."""

from __future__ import annotations


def test_tables_start_largest_first(copy, dbs):
    sizes = {"public.small": 300, "public.large": 60000, "public.medium": 5000,
             "public.tiny": 1}
    for table, rows in sizes.items():
        dbs.source.execute(f"CREATE TABLE {table} (id int, pad text);"
                           f"INSERT INTO {table} SELECT g, repeat('x', 50) FROM "
                           f"generate_series(1, {rows}) g; ANALYZE {table}")
    result = copy("public.tiny,public.small,public.medium,public.large", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    started = [e["table"] for e in result.events_of("table_started")]
    assert started == ["public.large", "public.medium", "public.small", "public.tiny"]
