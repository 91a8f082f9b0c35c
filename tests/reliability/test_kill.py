"""kill -9 of the worker at many points of a run (issue 7, "Faults").

After every kill: each target table is the complete old or the complete new version (content
checksum against the saved versions), the ledger says "copied" exactly for the new ones, the
killed worker's server sessions (and so its locks) end within a bound, no staging object is left,
and a rerun with the same --run-id skips what was done and finishes the rest.

Points are reached by watching the servers (pg_stat_activity, pg_locks) or the worker's own
events, with hooks that only use the database (see rel_kill.py); a second test kills at fixed
times over a slowed-down run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from rel_kill import TABLES, KillWorld, slow_source_proxy
from rel_tools import Worker, backends, wait_for


@pytest.fixture
def world(dbs, proxies, tmp_path) -> KillWorld:
    proxy = slow_source_proxy(proxies, dbs.source.dsn)
    return KillWorld.build(dbs.source.dsn, dbs.target.dsn, tmp_path, proxy)


def _active(world: KillWorld, run_id: str, like: str, state: str = "active"
            ) -> Callable[[], bool]:
    import fnmatch

    def check() -> bool:
        return any(s == state and fnmatch.fnmatch((q or "").lower(), like.lower())
                   for _pid, s, _w, q in backends(world.target_dsn, world.app(run_id)))
    return check


def _waiting_on(world: KillWorld, run_id: str, relation: str, mode: str) -> Callable[[], bool]:
    def check() -> bool:
        conn = psycopg2.connect(world.target_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("""SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                WHERE a.application_name = %s AND NOT l.granted
                                  AND l.relation = to_regclass(%s) AND l.mode = %s""",
                            (world.app(run_id), relation, mode))
                return cur.fetchone()[0] > 0
        finally:
            conn.close()
    return check


@contextlib.contextmanager
def holding(dsn: str, sql: str) -> Iterator[None]:
    """A session that takes a lock (in an open transaction) for the duration of the block."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        yield
    finally:
        conn.rollback()
        conn.close()


def _event(w: Worker, kind: str, n: int = 1) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return sum(1 for e in w.events if e.get("event") == kind) >= n
        except ValueError:  # a line half written
            return False
    return check


# (id, lock held meanwhile as (sql) or None, predicate factory)
POINTS = {
    "prepare-target": ("SELECT pg_advisory_xact_lock(hashtext('nightcopy.prepare'))",
                       lambda w, r, p: _active(w, r, "*pg_advisory_xact_lock*nightcopy.prepare*")),
    "ledger-start-run": ("LOCK TABLE nightcopy.invocations IN EXCLUSIVE MODE",
                         lambda w, r, p: _active(w, r, "*insert into nightcopy.invocations*")),
    "copy-big-table": (None, lambda w, r, p: _active(w, r, "copy *t_big*from stdin*")),
    "copy-partition": (None, lambda w, r, p: _active(w, r, "copy *t_part_?*from stdin*")),
    "index-build": (None, lambda w, r, p: _active(w, r, "create index*nc_slow*")),
    "analyze": (None, lambda w, r, p: _active(w, r, "analyze*t_idx*")),
    "swap-lock-wait": ("BEGIN; SELECT count(*) FROM public.t_view",
                       lambda w, r, p: _waiting_on(w, r, "public.t_view", "AccessExclusiveLock")),
    "ledger-row-before-commit": (
        "LOCK TABLE nightcopy.table_results IN EXCLUSIVE MODE",
        lambda w, r, p: _active(w, r, "*insert into nightcopy.table_results*")),
    "after-first-commit": (None, lambda w, r, p: _event(p, "table_copied", 1)),
    "after-third-commit": (None, lambda w, r, p: _event(p, "table_copied", 3)),
}


def test_kill9_at_chosen_points(world: KillWorld) -> None:
    """One kill at each point of POINTS, in turn on the same world; after each: the checks,
    a resume with the same run id, and a new version of every table on the source."""
    for point, (hold_sql, predicate) in POINTS.items():
        run_id = f"kill-{point}"
        lock_cm = holding(world.target_dsn, hold_sql) if hold_sql else contextlib.nullcontext()
        # hold the run longer where the point is short: a slower COPY stream, a slow index
        world.proxy.delay = 0.02 if point.startswith("copy-") else 0.003
        world.slow_index(0.005 if point in SLOW_INDEX_POINTS else 0)
        with lock_cm:
            w = world.start(run_id)
            try:
                wait_for(lambda w=w, p=predicate, r=run_id: w.proc.poll() is not None
                         or p(world, r, w)(), 30, 0.01, f"kill point {point}")
                assert w.proc.poll() is None, f"the worker ended before {point}: {w.stderr}"
                w.kill9()
            finally:
                w.close()
            world.slow_index(0)
            world.proxy.delay = 0.003
            if point in HELD_BEFORE_ANY_COMMIT:
                # nothing committed while the worker was held there; reading the tables waits
                # at most for the killed worker's session to notice (client check interval 5 s)
                t0 = time.monotonic()
                assert world.states() == {t: "old" for t in TABLES}, (point, world.states())
                assert time.monotonic() - t0 < 15, "a killed worker's lock outlived 3 x 5 s"
        states = world.check_after_kill(w, run_id, point)
        if point.startswith("after-"):
            expected = 1 if point == "after-first-commit" else 3
            assert sum(s == "new" for s in states.values()) >= expected, (point, states)
        world.resume(run_id, {t for t, s in states.items() if s == "new"})
        world.next_version()
    assert world.kills == len(POINTS)


SLOW_INDEX_POINTS = ("index-build", "analyze", "after-first-commit", "after-third-commit")
HELD_BEFORE_ANY_COMMIT = ("ledger-row-before-commit", "swap-lock-wait", "ledger-start-run",
                          "prepare-target")


def test_kill9_at_times_with_resume(world: KillWorld) -> None:
    """Ten kills spread over a slowed run (times calibrated on one full run of this machine),
    each followed by a resume; the source changes between rounds, so every round has an old
    and a new version of every table."""
    t0 = time.monotonic()
    calibration = world.start("timed-calibration")
    assert calibration.wait(120) == 0, calibration.stderr
    full = time.monotonic() - t0
    world.next_version()
    fractions = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97]
    outcomes = []
    for i, fraction in enumerate(fractions):
        run_id = f"timed-{i}"
        w = world.start(run_id)
        try:
            time.sleep(full * fraction)
            finished = w.proc.poll() is not None
            w.kill9()
        finally:
            w.close()
        states = world.check_after_kill(w, run_id, f"t+{full * fraction:.2f}s of {full:.2f}s")
        new = {t for t, s in states.items() if s == "new"}
        outcomes.append((round(full * fraction, 2), finished, len(new)))
        world.resume(run_id, new)
        world.next_version()
    # most kills hit a live worker, at different stages (how many tables were swapped in)
    assert sum(not finished for _d, finished, _n in outcomes) >= 5, outcomes
    assert len({n for _d, _f, n in outcomes}) >= 2, outcomes
    assert not backends(world.target_dsn, "nightcopy:")


def test_kill9_truncate_strategy_at_times(world: KillWorld) -> None:
    """--strategy truncate is atomic too (TRUNCATE + COPY FREEZE in one transaction): four
    kills spread over a slowed run, each table old or new afterwards, then a resume."""
    t0 = time.monotonic()
    calibration = world.start("trunc-calibration", "--strategy", "truncate")
    assert calibration.wait(120) == 0, calibration.stderr
    full = time.monotonic() - t0
    world.next_version()
    live_kills = 0
    for i, fraction in enumerate([0.35, 0.55, 0.75, 0.9]):
        run_id = f"trunc-{i}"
        w = world.start(run_id, "--strategy", "truncate")
        try:
            time.sleep(full * fraction)
            live_kills += w.proc.poll() is None
            w.kill9()
        finally:
            w.close()
        states = world.check_after_kill(w, run_id, f"truncate t+{full * fraction:.2f}s")
        world.resume(run_id, {t for t, s in states.items() if s == "new"})
        world.next_version()
    # A kill after the worker already exited proves nothing: most must hit a live one.
    assert live_kills >= 3, f"only {live_kills} of 4 kills hit a running worker"


def test_sigterm_during_copy_then_resume(world: KillWorld) -> None:
    """SIGTERM (what a stopped or timed-out build sends first) during the COPY: the worker
    ends promptly without a traceback, the target is old or new per table, a resume finishes."""
    import signal

    run_id = "sigterm"
    world.proxy.delay = 0.02
    w = world.start(run_id)
    try:
        wait_for(lambda: w.proc.poll() is not None
                 or _active(world, run_id, "copy *t_big*from stdin*")(), 30, 0.01, "the COPY")
        assert w.proc.poll() is None, w.stderr
        w.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        w.proc.wait(15)
        assert time.monotonic() - t0 < 15
        assert w.proc.returncode != 0
    finally:
        world.proxy.delay = 0.003
        w.close()
    states = world.check_after_kill(w, run_id, "SIGTERM during COPY")
    world.resume(run_id, {t for t, s in states.items() if s == "new"})
