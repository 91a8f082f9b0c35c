"""`nightcopy prune --keep-days N`: the ledger's retention."""

from __future__ import annotations

from nightcopy.engine.ledger import ensure_ledger


def _night(cur, run_id: str, days_ago: float, *, finished: bool = True) -> None:
    cur.execute(
        """INSERT INTO nightcopy.invocations (run_id, group_name, status, started_at, finished_at)
           VALUES (%s, 'g1', %s, now() - make_interval(days => %s),
                   CASE WHEN %s THEN now() - make_interval(days => %s) END)""",
        (run_id, "succeeded" if finished else "running", days_ago, finished, days_ago))
    cur.execute("""INSERT INTO nightcopy.table_results (run_id, table_name, group_name, status,
                       seconds, finished_at)
                   VALUES (%s, 'public.a', 'g1', 'copied', 1, now())""", (run_id,))


def test_prune_removes_old_runs_and_keeps_recent_ones_and_ownership(nc, dbs):
    conn = dbs.target.connect()
    conn.autocommit = False
    ensure_ledger(conn)
    with conn.cursor() as cur:
        _night(cur, "old-1", 200)
        _night(cur, "old-killed", 120, finished=False)  # a worker killed long ago
        _night(cur, "recent", 10)
        cur.execute("INSERT INTO nightcopy.managed_tables (table_oid, table_name, run_id) "
                    "VALUES (12345, 'public.a', 'old-1')")
    conn.commit()
    conn.close()
    r = nc("prune", "--target", dbs.target.dsn, "--dry-run")
    assert r.exit_code == 0, r.text
    assert "would remove 2 runs older than 90 days" in r.stdout
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.invocations") == 3
    r = nc("prune", "--target", dbs.target.dsn)
    assert r.exit_code == 0, r.text
    assert "removed 2 runs older than 90 days (2 invocations, 2 table results)" in r.stdout
    assert dbs.target.query("SELECT run_id FROM nightcopy.invocations") == [("recent",)]
    assert dbs.target.query("SELECT run_id FROM nightcopy.table_results") == [("recent",)]
    assert dbs.target.scalar("SELECT count(*) FROM nightcopy.managed_tables") == 1
    r = nc("prune", "--target", dbs.target.dsn, "--keep-days", "5")
    assert "removed 1 run older than 5 days" in r.stdout
    r = nc("prune", "--target", dbs.target.dsn, "--keep-days", "0")
    assert r.exit_code == 2  # a usage error: the range is the option's
