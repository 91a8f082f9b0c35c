"""The swap under real reporting use (issue 14): reproductions through the real command line.

Each test drives `nightcopy copy` as a process against the embedded servers while the target is
used as a reporting database is: a view joining copied tables, readers polling it. They failed on
the engine before issue 14 (they were marked xfail(strict) until the two-phase swap and the
materialized-view rebuild landed).
The tests after them cover the swap units, blockers and the stress harness in CI.

- two workers of one invocation deadlock each other through a shared view (each already holds
  ACCESS SHARE on both tables, taken when it read the view's definition at the start of its
  transaction, when it asks for ACCESS EXCLUSIVE on its own table);
- a reader of that view gets `deadlock detected` (it locks the view, then waits for the table
  the swap holds, while the swap waits for the view to drop it);
- a materialized view over a copied table made the swap fail the table (fixed; with --jobs 2
  its test still meets the shared-view deadlock above);
- between two per-table swaps a view joining both shows tonight's rows of one table with last
  night's of the other;
- the stress harness of scripts/swap-stress, reduced to 2 nights.

Every row of night N carries N in its `night` column, so a reader can tell what it saw. The
server's own deadlock counter (pg_stat_database.deadlocks) and a pg_locks watcher show who
waited for whom.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from stresslib import world  # noqa: E402
from stresslib.harness import StressConfig, run_stress, settled_deadlocks  # noqa: E402
from stresslib.report import details  # noqa: E402

VIEW = "report.rental_inventory"
VIEW_SQL = f"""
CREATE SCHEMA report;
CREATE VIEW {VIEW} AS
SELECT r.id, r.night AS rental_night, i.night AS inventory_night
  FROM public.rental r JOIN public.inventory i ON i.id = r.inventory_id;
"""
NIGHTS_SEEN = (f"SELECT ARRAY(SELECT DISTINCT n FROM {VIEW} v, "
               "unnest(ARRAY[v.rental_night, v.inventory_night]) n ORDER BY n)")
# What a dashboard polls: the nights seen in the first 200 rentals of the view (an index scan
# and nested loop, ~1 ms; every row of a night carries the same night, so a sample shows a mix).
NIGHTS_SEEN_POLL = NIGHTS_SEEN.replace(") n ORDER BY n)", ") n WHERE v.id <= 200 ORDER BY n)")


def _write_night(db, night: int, rentals: int, inventory: int) -> None:
    db.execute(f"""
        TRUNCATE public.rental, public.inventory;
        INSERT INTO public.inventory SELECT g, {night}, repeat('i', 40)
          FROM generate_series(1, {inventory}) g;
        INSERT INTO public.rental SELECT g, 1 + g % {inventory}, {night}, repeat('r', 40)
          FROM generate_series(1, {rentals}) g""")


def _world(dbs, cli, rentals: int, inventory: int) -> None:
    """rental and inventory on both sides (night 0 copied), the view joining them on the target."""
    dbs.source.execute("""
        CREATE TABLE public.inventory (id int PRIMARY KEY, night int NOT NULL, pad text);
        CREATE TABLE public.rental (id int PRIMARY KEY, inventory_id int NOT NULL,
                                    night int NOT NULL, pad text)""")
    _write_night(dbs.source, 0, rentals, inventory)
    first = _copy(dbs, cli, "public.rental,public.inventory", "night-0")
    assert first.returncode == 0, first.stderr
    dbs.target.execute(VIEW_SQL)


def _copy(dbs, cli, tables: str, run_id: str, *extra: str):
    return cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn,
                "--tables", tables, "--run-id", run_id, *extra], timeout=120)


class WaitWatch(threading.Thread):
    """Samples, every 10 ms, which target sessions wait for which (pg_blocking_pids): records
    every pair of nightcopy sessions waiting for each other (a deadlock among its workers)."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.mutual: list[tuple[str, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stopping.is_set():
                cur.execute("""SELECT pid, pg_blocking_pids(pid), left(query, 80)
                                 FROM pg_stat_activity
                                WHERE application_name LIKE 'nightcopy:%%'
                                  AND datname = current_database()""")
                rows = cur.fetchall()
                waits = {pid: (set(blockers), query) for pid, blockers, query in rows}
                for pid, (blockers, query) in waits.items():
                    for other in blockers:
                        if other in waits and pid in waits[other][0] and pid < other:
                            self.mutual.append((query, waits[other][1]))
                time.sleep(0.01)
        conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class ViewReader(threading.Thread):
    """A dashboard: polls the view and both tables, each query on its own (autocommit) or,
    every other time, inside a transaction of its own; records errors, the longest wait, and
    every result of the view that saw two nights at once."""

    def __init__(self, dsn: str, in_transactions: bool):
        super().__init__(daemon=True)
        self.dsn, self.in_transactions = dsn, in_transactions
        self.errors: list[str] = []
        self.mixed: list[list[int]] = []
        self.longest = 0.0
        self.statements = 0
        self.stopping = threading.Event()

    def _timed(self, cur, sql: str):
        t0 = time.monotonic()
        cur.execute(sql)
        row = cur.fetchone()
        self.longest = max(self.longest, time.monotonic() - t0)
        self.statements += 1
        return row

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stopping.is_set():
                try:
                    if self.in_transactions:
                        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    nights = self._timed(cur, NIGHTS_SEEN_POLL)[0]
                    if len(nights) > 1:
                        self.mixed.append(nights)
                    self._timed(cur, "SELECT count(*) FROM public.rental")
                    self._timed(cur, "SELECT count(*) FROM public.inventory")
                    if self.in_transactions:
                        cur.execute("COMMIT")
                except psycopg2.Error as exc:
                    self.errors.append(f"{exc.pgcode}: {str(exc).strip().splitlines()[0]}")
                    if self.in_transactions:
                        cur.execute("ROLLBACK")
                time.sleep(0.001)
        conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def test_two_workers_never_deadlock_through_a_shared_view(dbs, cli) -> None:
    """One invocation, --jobs 2, two tables of the same size joined by one target view and
    nothing else connected: the two workers swap at about the same moment and must never wait
    for each other's locks in a cycle. (Today each worker already holds ACCESS SHARE on both
    tables from reading the view's definition at the start of its transaction, so their LOCK
    TABLE ... ACCESS EXCLUSIVE deadlock every night; the loser's retries then wait for the
    winner, which waits for the loser's ACCESS SHARE, until the loser gives up.)"""
    _world(dbs, cli, rentals=20000, inventory=20000)
    watch = WaitWatch(dbs.target.dsn)
    watch.start()
    before = settled_deadlocks(dbs.target.dsn)
    failures: list[str] = []
    try:
        for night in range(1, 4):
            _write_night(dbs.source, night, 20000, 20000)
            # --lock-attempts 2 only shortens today's failure (the default 6 takes ~30 s); a
            # worker must never need a retry because of another worker of its own run.
            result = _copy(dbs, cli, "public.rental,public.inventory", f"night-{night}",
                           "--jobs", "2", "--lock-attempts", "2")
            if result.returncode != 0:
                failures.append(result.stderr.strip())
            deadlocks = settled_deadlocks(dbs.target.dsn) - before
            if deadlocks or watch.mutual or failures:
                break
    finally:
        watch.stop()
    assert not watch.mutual, (f"night {night}: nightcopy's own workers waited for each other "
                              f"({watch.mutual[0][0]!r} and {watch.mutual[0][1]!r})")
    assert deadlocks == 0, f"night {night}: the target server detected {deadlocks} deadlock(s)"
    assert not failures, f"night {night}: {failures[0]}"
    assert dbs.target.scalar(NIGHTS_SEEN) == [night]


def test_readers_of_a_view_get_no_error_and_wait_at_most_the_bound(dbs, cli) -> None:
    """Only rental is copied (one worker); readers poll the view over rental and inventory and
    both tables, in autocommit and in their own REPEATABLE READ transactions."""
    _world(dbs, cli, rentals=5000, inventory=1000)
    lock_timeout = 2.0  # the default; deadlock_timeout (1 s) fires before it, as in production
    readers = [ViewReader(dbs.target.dsn, i % 2 == 1)
               for i in range(4)]
    for r in readers:
        r.start()
    try:
        for night in range(1, 5):
            _write_night(dbs.source, night, 5000, 1000)
            result = _copy(dbs, cli, "public.rental", f"night-{night}",
                           "--lock-timeout", f"{lock_timeout:g}")
            assert result.returncode == 0, result.stderr
            time.sleep(0.1)
            if any(r.errors for r in readers):
                break
    finally:
        for r in readers:
            r.stop()
    errors = [e for r in readers for e in r.errors]
    assert not errors, f"{len(errors)} reader error(s) over {night} night(s), first: {errors[0]}"
    assert sum(r.statements for r in readers) > 100  # the readers really read meanwhile
    longest = max(r.longest for r in readers)
    assert longest <= 3 * lock_timeout, f"a reader waited {longest:.2f}s"


def test_materialized_view_over_a_copied_table_is_rebuilt_by_the_swap(dbs, cli) -> None:
    _world(dbs, cli, rentals=2000, inventory=200)
    world.ensure_reader_role(dbs.target.dsn)
    dbs.target.execute(f"""
        CREATE MATERIALIZED VIEW report.rentals_per_night AS
        SELECT night, count(*) AS rentals FROM public.rental GROUP BY night;
        CREATE UNIQUE INDEX rentals_per_night_key ON report.rentals_per_night (night);
        COMMENT ON MATERIALIZED VIEW report.rentals_per_night IS 'rentals per night';
        GRANT USAGE ON SCHEMA report TO {world.READER_ROLE};
        GRANT SELECT ON report.rentals_per_night TO {world.READER_ROLE}""")
    _write_night(dbs.source, 1, 2500, 200)
    result = _copy(dbs, cli, "public.rental,public.inventory", "night-1")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT night, rentals FROM report.rentals_per_night") == [(1, 2500)]
    assert dbs.target.scalar("SELECT to_regclass('report.rentals_per_night_key') IS NOT NULL")
    assert dbs.target.scalar("SELECT obj_description('report.rentals_per_night'::regclass, "
                             "'pg_class')") == "rentals per night"
    assert dbs.target.scalar(f"SELECT has_table_privilege('{world.READER_ROLE}', "
                             "'report.rentals_per_night', 'SELECT')")


def test_view_joining_tables_of_one_invocation_never_mixes_two_nights(dbs, cli) -> None:
    """--jobs 1: rental (the larger) is swapped first, inventory some 100 ms later; a reader
    polling the view in between must still see one night only."""
    _world(dbs, cli, rentals=40000, inventory=30000)
    reader = ViewReader(dbs.target.dsn, in_transactions=False)
    reader.start()
    try:
        for night in range(1, 4):
            _write_night(dbs.source, night, 40000, 30000)
            result = _copy(dbs, cli, "public.rental,public.inventory", f"night-{night}",
                           "--jobs", "1")
            assert result.returncode == 0, result.stderr
            if reader.mixed:
                break
    finally:
        reader.stop()
    assert not reader.mixed, (f"the view showed rows of nights {reader.mixed[0]} in one query "
                              f"({len(reader.mixed)} such results over {night} night(s))")
    assert reader.statements > 30  # the reader really read meanwhile
    assert dbs.target.scalar(NIGHTS_SEEN) == [night]


def test_stress_harness_two_nights_swap(dbs) -> None:
    """scripts/swap-stress reduced for CI: 2 nights, --strategy swap, --jobs 4, 4 readers, with
    nightcopy's default lock settings (shorter ones than a user gets made the swap's success
    depend on how loaded the CI machine is; what is asserted is the same: no reader error, no
    deadlock, no mixed nights, every table swapped)."""
    world.ensure_reader_role(dbs.target.dsn)
    config = StressConfig(nights=2, strategy="swap", sizes=world.Sizes().scaled(0.25))
    result = run_stress(dbs.source.dsn, dbs.target.dsn, config)
    assert result.clean, details(result)


# ------------------------------------------------------------------ swap units (issue 14)
BLOCKER_SQL = ("CREATE TABLE public.inventory_note (inventory_id int REFERENCES "
               "public.inventory (id))")


def _failed(result) -> dict[str, str]:
    return {e["table"]: e["error"] for e in _events(result) if e["event"] == "table_failed"}


def _events(result) -> list[dict]:
    import json
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_a_failed_table_keeps_its_linked_tables_on_last_night(dbs, cli) -> None:
    """rental and inventory are linked by the view; inventory cannot be replaced (a target-only
    foreign key references it), so rental keeps last night's rows too, naming inventory."""
    _world(dbs, cli, rentals=500, inventory=50)
    dbs.target.execute(BLOCKER_SQL)
    _write_night(dbs.source, 1, 500, 50)
    result = _copy(dbs, cli, "public.rental,public.inventory", "night-1")
    assert result.returncode == 1
    failed = _failed(result)
    assert set(failed) == {"public.rental", "public.inventory"}, failed
    assert "public.inventory" in failed["public.rental"], failed["public.rental"]
    assert "--swap-scope table" in failed["public.rental"]
    assert dbs.target.scalar(NIGHTS_SEEN) == [0]
    # the unit's staged copies are dropped when it is not swapped
    assert dbs.target.scalar("SELECT to_regclass('nightcopy_stage_public.rental')") is None


def test_swap_scope_table_swaps_each_table_alone(dbs, cli) -> None:
    _world(dbs, cli, rentals=500, inventory=50)
    dbs.target.execute(BLOCKER_SQL)
    _write_night(dbs.source, 1, 500, 50)
    result = _copy(dbs, cli, "public.rental,public.inventory", "night-1",
                   "--swap-scope", "table")
    assert result.returncode == 1
    assert set(_failed(result)) == {"public.inventory"}
    assert dbs.target.scalar("SELECT ARRAY(SELECT DISTINCT night FROM public.rental)") == [1]


def test_swap_scope_group_flips_unlinked_tables_together(dbs, cli) -> None:
    """No view links the two tables; with --swap-scope group one failure keeps both."""
    dbs.source.execute("""
        CREATE TABLE public.inventory (id int PRIMARY KEY, night int NOT NULL, pad text);
        CREATE TABLE public.rental (id int PRIMARY KEY, inventory_id int NOT NULL,
                                    night int NOT NULL, pad text)""")
    _write_night(dbs.source, 0, 500, 50)
    assert _copy(dbs, cli, "public.rental,public.inventory", "night-0").returncode == 0
    dbs.target.execute(BLOCKER_SQL)
    _write_night(dbs.source, 1, 500, 50)
    linked = _copy(dbs, cli, "public.rental,public.inventory", "night-1")
    assert set(_failed(linked)) == {"public.inventory"}  # not linked: rental went ahead
    _write_night(dbs.source, 2, 500, 50)
    group = _copy(dbs, cli, "public.rental,public.inventory", "night-2", "--swap-scope", "group")
    assert set(_failed(group)) == {"public.rental", "public.inventory"}
    assert dbs.target.scalar("SELECT ARRAY(SELECT DISTINCT night FROM public.rental)") == [1]


def test_a_staged_leftover_of_a_killed_run_is_dropped_by_the_next(dbs, cli) -> None:
    """A run killed after a load committed leaves the staged copy; the next run drops it."""
    _world(dbs, cli, rentals=500, inventory=50)
    dbs.target.execute("CREATE TABLE nightcopy_stage_public.rental (leftover int)")
    _write_night(dbs.source, 1, 500, 50)
    result = _copy(dbs, cli, "public.rental,public.inventory", "night-1")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT to_regclass('nightcopy_stage_public.rental')") is None
    assert dbs.target.scalar(NIGHTS_SEEN) == [1]


def test_a_lock_failure_names_who_holds_what(dbs, cli) -> None:
    _world(dbs, cli, rentals=500, inventory=50)
    reader = psycopg2.connect(dbs.target.dsn, application_name="long-report")
    try:
        with reader.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {VIEW}")  # ACCESS SHARE kept: idle in transaction
        _write_night(dbs.source, 1, 500, 50)
        result = _copy(dbs, cli, "public.rental,public.inventory", "night-1",
                       "--lock-timeout", "0.1", "--lock-attempts", "2")
    finally:
        reader.rollback()
        reader.close()
    assert result.returncode == 1
    error = _failed(result)["public.rental"]
    assert "long-report" in error and "holds AccessShareLock on" in error, error
    assert "--cancel-blockers-after" in error


def test_cancel_blockers_after_cancels_a_long_query_and_names_it(dbs, cli) -> None:
    """A report query that would run 60 s holds the view's tables: with
    --cancel-blockers-after the swap cancels it and says whose it was (never its text)."""
    _world(dbs, cli, rentals=500, inventory=50)
    outcome: list[str] = []

    def long_report() -> None:
        conn = psycopg2.connect(dbs.target.dsn, application_name="long-report")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*), pg_sleep(60) FROM {VIEW} WHERE id = 1 "
                            "AND 'secret-marker' IS NOT NULL")
            outcome.append("finished")
        except psycopg2.errors.QueryCanceled:
            outcome.append("cancelled")
        finally:
            conn.close()

    thread = threading.Thread(target=long_report, daemon=True)
    thread.start()
    time.sleep(0.5)
    _write_night(dbs.source, 1, 500, 50)
    t0 = time.monotonic()
    result = _copy(dbs, cli, "public.rental,public.inventory", "night-1",
                   "--lock-timeout", "0.2", "--cancel-blockers-after", "1")
    thread.join(10)
    assert result.returncode == 0, result.stderr
    assert outcome == ["cancelled"]
    assert time.monotonic() - t0 < 30
    warnings = [e["message"] for e in _events(result) if e["event"] == "warning"
                and "cancelled the query" in e["message"]]
    assert warnings and "long-report" in warnings[0], warnings
    assert "secret-marker" not in result.stdout + result.stderr
    assert dbs.target.scalar(NIGHTS_SEEN) == [1]


def _stress(dbs, **config) -> None:
    world.ensure_reader_role(dbs.target.dsn)
    result = run_stress(dbs.source.dsn, dbs.target.dsn, StressConfig(
        nights=5, lock_timeout=0.5, lock_attempts=6, matview=False,
        sizes=world.Sizes().scaled(0.25), **config))
    assert result.clean, details(result)


def test_stress_five_nights_swap_linked(dbs) -> None:
    """scripts/swap-stress in CI (report.film_revenue a plain view: materialized views are
    covered by test_stress_harness_two_nights_swap): --jobs 4, 4 readers, 5 nights."""
    _stress(dbs, strategy="swap", swap_scope="linked")


def test_stress_five_nights_swap_group(dbs) -> None:
    _stress(dbs, strategy="swap", swap_scope="group")


def test_stress_five_nights_truncate(dbs) -> None:
    _stress(dbs, strategy="truncate")
