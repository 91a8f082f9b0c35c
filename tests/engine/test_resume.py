"""The run ledger: a retried worker with the same run id skips finished tables."""

from __future__ import annotations


def test_resume_skips_tables_the_run_already_copied(copy, corpus, dbs):
    dbs.source.execute(corpus)
    first = copy("public.parent_accounts", "--run-id", "nightly-2026-11-25")
    assert first.returncode == 0
    second = copy("public.parent_accounts,public.wide_text", "--run-id",
                  "nightly-2026-11-25")
    assert second.returncode == 0, second.stderr
    assert [e["table"] for e in second.events_of("table_skipped")] == ["public.parent_accounts"]
    assert [e["table"] for e in second.events_of("table_copied")] == ["public.wide_text"]
    rows = dbs.target.query("SELECT table_name, status FROM nightcopy.table_results WHERE "
                            "run_id = 'nightly-2026-11-25' ORDER BY 1")
    assert rows == [("public.parent_accounts", "copied"), ("public.wide_text", "copied")]
