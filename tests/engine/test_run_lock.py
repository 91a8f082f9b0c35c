"""Two runs never copy the same table at once (the per-table advisory lock)."""

from __future__ import annotations

import psycopg2


def test_a_table_held_by_another_run_fails_at_once_naming_it(copy, dbs):
    dbs.source.execute("CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1)")
    holder = psycopg2.connect(dbs.target.dsn, application_name="nightcopy:nightly-2026-11-24")
    cur = holder.cursor()
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('nightcopy'), hashtext('public.t'))")
    try:
        result = copy("public.t")
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    assert "nightcopy:nightly-2026-11-24" in result.stderr
    assert "being copied right now" in result.stderr
