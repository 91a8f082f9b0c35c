"""`nightcopy prune`: the ledger's retention (its run history would otherwise grow forever).

What goes: every run (all its invocations and their table results) whose last invocation ended,
or for one that never ended (a killed worker) started, more than `keep_days` ago. What stays:
the record of which target tables are nightcopy's (managed_tables, by oid: without it a glob
would stop replacing them) and of the functions it copied; they are not history.

The default, 90 days, is about three months of nights: enough for `history` and `plan` (which
look at the last 7 runs by default) and for comparing a month with the one before, at a size
that does not matter (a night of 200 tables is 200 rows of about 200 bytes: 90 nights are a few
megabytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from nightcopy.engine.ledger import TABLE_RESULTS, readable_ledger
from nightcopy.engine.pg_rows import fetch_value
from nightcopy.errors import NightcopyError

DEFAULT_KEEP_DAYS = 90


@dataclass(frozen=True)
class Pruned:
    runs: list[str]  # the run ids removed (or that would be, for a dry run), oldest first
    invocations: int
    table_results: int
    keep_days: int
    dry_run: bool


def prune(target_dsn: str, keep_days: int, *, dry_run: bool = False) -> Pruned:
    """Remove (or with dry_run only count) the runs older than keep_days from the ledger."""
    from nightcopy.engine.connection import connect, redact_dsn

    if keep_days < 1:
        raise NightcopyError("--keep-days must be at least 1 (the runs of the last day stay)")
    conn = connect(target_dsn, "target", "nightcopy prune")
    try:
        invocations = readable_ledger(conn)
        if invocations is None:
            raise NightcopyError(f"no run ledger in the target ({redact_dsn(target_dsn)}): "
                                 "nothing to prune")
        with conn.cursor() as cur:
            cur.execute(
                f"""SELECT run_id FROM {invocations} GROUP BY run_id
                     HAVING max(coalesce(finished_at, started_at))
                            < now() - make_interval(days => %s)
                     ORDER BY max(coalesce(finished_at, started_at)), run_id""", (keep_days,))
            runs = [row[0] for row in cur.fetchall()]
            n_invocations = int(fetch_value(
                cur, f"SELECT count(*) FROM {invocations} WHERE run_id = ANY(%s)", (runs,)))
            n_results = int(fetch_value(
                cur, f"SELECT count(*) FROM {TABLE_RESULTS} WHERE run_id = ANY(%s)", (runs,)))
            if not dry_run and runs:
                cur.execute(f"DELETE FROM {TABLE_RESULTS} WHERE run_id = ANY(%s)", (runs,))
                cur.execute(f"DELETE FROM {invocations} WHERE run_id = ANY(%s)", (runs,))
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
    finally:
        conn.close()
    return Pruned(runs, n_invocations, n_results, keep_days, dry_run)
