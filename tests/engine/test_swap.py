"""The swap strategy: readers, what a replaced table keeps, what it refuses."""

from __future__ import annotations

import time

from tests.pgutil import PollingReader, digests


def test_second_copy_replaces_keeping_views_grants_and_target_indexes(copy, corpus, dbs):
    dbs.source.execute(corpus)
    assert copy("public.parent_accounts,public.child_payments").returncode == 0
    dbs.target.execute("""
        DO $$ BEGIN CREATE ROLE nightcopy_test_reader;
        EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        CREATE VIEW public.big_payments AS SELECT id, amount FROM public.child_payments
            WHERE amount > 100;
        CREATE VIEW public.big_payment_count AS SELECT count(*) AS n FROM public.big_payments;
        COMMENT ON VIEW public.big_payments IS 'kept';
        GRANT SELECT ON public.child_payments, public.big_payments TO nightcopy_test_reader;
        CREATE INDEX reporting_only_idx ON public.child_payments (amount DESC);
        ALTER TABLE public.child_payments ENABLE ROW LEVEL SECURITY;
        CREATE POLICY small_only ON public.child_payments FOR SELECT TO nightcopy_test_reader
            USING (amount < 500);
        CREATE STATISTICS public.pay_stats (ndistinct) ON id, account_id
            FROM public.child_payments;
        CREATE PUBLICATION reporting_pub FOR TABLE public.child_payments;
    """)
    old_oid = dbs.target.scalar("SELECT 'public.child_payments'::regclass::oid")
    dbs.source.execute("INSERT INTO public.child_payments VALUES (5000, 3, 999.99, NULL)")
    result = copy("public.parent_accounts,public.child_payments")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT 'public.child_payments'::regclass::oid") != old_oid
    assert dbs.target.scalar("SELECT count(*) FROM public.child_payments") == 1001
    assert dbs.target.scalar("SELECT n FROM public.big_payment_count") == \
        dbs.source.scalar("SELECT count(*) FROM public.child_payments WHERE amount > 100")
    assert dbs.target.scalar("SELECT obj_description('public.big_payments'::regclass)") == "kept"
    for rel in ("public.child_payments", "public.big_payments"):
        assert dbs.target.scalar("SELECT has_table_privilege('nightcopy_test_reader', %s, "
                                 "'SELECT')", (rel,)) is True
    assert dbs.target.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = "
                             "'reporting_only_idx'") == 1
    assert dbs.target.scalar("SELECT convalidated FROM pg_constraint WHERE conname = "
                             "'child_payments_account_id_fkey'") is True
    # Target-side row-level security, statistics and publication membership carried over.
    assert dbs.target.scalar("SELECT relrowsecurity FROM pg_class WHERE oid = "
                             "'public.child_payments'::regclass") is True
    assert dbs.target.query("SELECT policyname, qual FROM pg_policies WHERE tablename = "
                            "'child_payments'") == [("small_only", "(amount < (500)::numeric)")]
    assert dbs.target.scalar("SELECT count(*) FROM pg_statistic_ext WHERE stxname = "
                             "'pay_stats'") == 1
    assert dbs.target.scalar("SELECT count(*) FROM pg_publication_tables WHERE pubname = "
                             "'reporting_pub' AND tablename = 'child_payments'") == 1


def test_readers_see_old_rows_until_the_swap_then_new_rows(copy, dbs):
    dbs.source.execute("CREATE TABLE public.facts (id bigint PRIMARY KEY, v text);"
                       "INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1, 1000) g")
    assert copy("public.facts").returncode == 0
    dbs.source.execute("INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1001, 300000) g")
    with PollingReader(dbs.target.dsn, "SELECT count(*) FROM public.facts") as reader:
        result = copy("public.facts")
        time.sleep(0.2)
    seen = reader.seen
    assert result.returncode == 0, result.stderr
    assert not reader.errors, reader.errors
    assert set(seen) <= {1000, 300000}, sorted(set(seen))[:10]
    assert seen[0] == 1000 and seen[-1] == 300000
    # Never back to the old version once the new one showed.
    assert seen[seen.index(300000):] == [300000] * (len(seen) - seen.index(300000))


def test_a_target_view_that_cannot_follow_the_new_definition_keeps_the_old_table(copy, dbs):
    dbs.source.execute("CREATE TABLE public.m (id int, amount numeric);"
                       "INSERT INTO public.m VALUES (1, 10)")
    assert copy("public.m").returncode == 0
    dbs.target.execute("CREATE VIEW public.m_amounts AS SELECT id, amount FROM public.m")
    dbs.source.execute("ALTER TABLE public.m DROP COLUMN amount; INSERT INTO public.m VALUES (2)")
    before = digests(dbs.target.dsn, ["public.m"])
    result = copy("public.m")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "view public.m_amounts cannot be re-created" in error and "amount" in error
    assert digests(dbs.target.dsn, ["public.m"]) == before
    assert dbs.target.scalar("SELECT count(*) FROM public.m_amounts") == 1
