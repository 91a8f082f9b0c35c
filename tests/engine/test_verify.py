"""Verification before the swap: `--verify checksum` compares every row's text form on the
source snapshot and the loaded table; a mismatch fails the table and keeps the old rows."""

from __future__ import annotations

from tests.pgutil import digests

# A target-side trigger that alters each loaded row: the same number of rows arrives (so the
# row-count check passes), but not the same rows. Only truncate loads into the existing table
# and so fires it; that is how a mismatch can be forced against real servers.
TAMPER = """
CREATE FUNCTION public.tamper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.v := NEW.v || '!'; RETURN NEW; END $$;
CREATE TRIGGER tamper BEFORE INSERT ON public.facts FOR EACH ROW EXECUTE FUNCTION public.tamper();
"""


def _source_then_first_copy(copy, dbs) -> tuple[int, str]:
    dbs.source.execute("CREATE TABLE public.facts (id int PRIMARY KEY, v text);"
                       "INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1, 500) g")
    assert copy("public.facts").returncode == 0
    dbs.target.execute(TAMPER)
    dbs.source.execute("UPDATE public.facts SET v = 'changed' WHERE id <= 10")
    return digests(dbs.target.dsn, ["public.facts"])["public.facts"]


def test_a_checksum_mismatch_fails_the_table_and_keeps_the_old_rows(copy, dbs):
    before = _source_then_first_copy(copy, dbs)
    result = copy("public.facts", "--strategy", "truncate", "--verify", "checksum")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "checksum mismatch" in error and "the old table was kept" in error
    assert digests(dbs.target.dsn, ["public.facts"])["public.facts"] == before
    assert result.events_of("run_summary")[0]["failed_tables"] == ["public.facts"]


def test_row_counts_alone_do_not_see_altered_rows(copy, dbs):
    # The same tampering under the default --verify count is copied: what checksum is for.
    _source_then_first_copy(copy, dbs)
    result = copy("public.facts", "--strategy", "truncate")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM public.facts WHERE v LIKE '%!'") == 500


def test_fewer_rows_stored_than_sent_fails_the_table_and_keeps_the_old_rows(copy, dbs):
    # A target trigger that silently drops some rows (BEFORE INSERT returning NULL): the COPY
    # command tags differ, and no --verify option is needed to notice.
    dbs.source.execute("CREATE TABLE public.facts (id int PRIMARY KEY, v text);"
                       "INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1, 500) g")
    assert copy("public.facts").returncode == 0
    before = digests(dbs.target.dsn, ["public.facts"])
    dbs.target.execute("""
        CREATE FUNCTION public.drop_some() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.id % 100 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
        CREATE TRIGGER drop_some BEFORE INSERT ON public.facts FOR EACH ROW
            EXECUTE FUNCTION public.drop_some();""")
    result = copy("public.facts", "--strategy", "truncate")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "the source sent 500 rows but the target stored 495" in error, error
    assert digests(dbs.target.dsn, ["public.facts"]) == before
