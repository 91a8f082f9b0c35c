"""The truncate strategy: the table and its dependents keep their identity."""

from __future__ import annotations

from tests.pgutil import digests, user_tables


def test_truncate_strategy_keeps_the_table_and_its_dependents(copy, corpus, dbs):
    dbs.source.execute(corpus)
    assert copy("archive.measurements,public.wide_text").returncode == 0
    # The rule blocks the swap; the materialized view truncate refreshes (test_matviews.py).
    dbs.target.execute("CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) FROM "
                       "archive.measurements; CREATE RULE measurements_rule AS ON DELETE TO "
                       "archive.measurements DO INSTEAD NOTHING")
    oid = dbs.target.scalar("SELECT 'archive.measurements'::regclass::oid")
    dbs.source.execute("DELETE FROM archive.measurements WHERE id % 2 = 0")
    swap = copy("archive.measurements")
    assert swap.returncode == 1
    assert "rule measurements_rule" in swap.stderr and "--strategy truncate" in swap.stderr
    result = copy("archive.measurements", "--strategy", "truncate", "--verify",
                  "checksum")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT 'archive.measurements'::regclass::oid") == oid
    tables = [t for t in user_tables(dbs.source.dsn) if t.startswith("archive.")]
    assert digests(dbs.target.dsn, tables) == digests(dbs.source.dsn, tables)
