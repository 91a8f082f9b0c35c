"""Consecutive nights of `nightcopy copy` under reporting readers, and what they saw.

Night 0 is the first copy into an empty target; then the target gets its views, materialized
view and grants, the readers start, and each further night writes new rows on the source,
computes every reader query's expected result there, and runs the real worker
(`python -m nightcopy copy --jobs 4 ...`) as a process. Afterwards every reader statement is
judged: an error, its wait (its duration), whether it saw two nights at once (a mix), and
whether its result equals that of a night that was current while it ran (the old or the new).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg2

from stresslib import world
from stresslib.readers import Observation, start_readers, stop_readers
from stresslib.world import one


@dataclass
class StressConfig:
    nights: int = 5
    strategy: str = "swap"  # swap | truncate
    swap_scope: str | None = None  # linked | group | table; None: the worker's default
    jobs: int = 4
    lock_timeout: float = 2.0  # nightcopy's default
    lock_attempts: int | None = None  # None: nightcopy's default (6)
    readers: int = 4
    sizes: world.Sizes = field(default_factory=world.Sizes)
    between_nights: float = 0.3  # readers also query the settled state between two nights
    matview: bool = True  # False: report.film_revenue is a plain view (world.setup_target_objects)

    @property
    def label(self) -> str:
        label = "truncate" if self.strategy == "truncate" else (
            f"swap/{self.swap_scope}" if self.swap_scope else "swap")
        return label if self.matview else label + " (no matview)"


@dataclass
class Night:
    number: int
    start: float
    end: float
    returncode: int
    failed: list[tuple[str, str]]  # (table, error)
    stderr: str


@dataclass
class StressResult:
    config: StressConfig
    scope_passed: bool  # whether --swap-scope reached the worker (it may not know it yet)
    nights: list[Night]
    observations: list[Observation]
    expected: dict[int, dict[str, tuple]]
    deadlocks: int  # counted by the target server during the readers' nights
    lost: list[str]

    # ------------------------------------------------------------------ judgements
    def _night_started(self, t: float) -> int:
        return max((n.number for n in self.nights if n.start <= t), default=0)

    def _night_done(self, t: float) -> int:
        return max((n.number for n in self.nights if n.end <= t), default=0)

    def allowed(self, o: Observation) -> set[tuple]:
        """Results of the nights that were current at some point while o ran."""
        first, last = self._night_done(o.txn_start), self._night_started(o.end)
        return {self.expected[k][o.relation] for k in range(first, last + 1)}

    @property
    def failed_tables(self) -> list[tuple[int, str, str]]:
        return [(n.number, t, e) for n in self.nights for t, e in n.failed]

    @property
    def errors(self) -> list[Observation]:
        return [o for o in self.observations if o.error is not None]

    @property
    def mixed(self) -> list[Observation]:
        return [o for o in self.observations if o.result is not None and len(o.result[2]) > 1]

    @property
    def neither_night(self) -> list[Observation]:
        return [o for o in self.observations
                if o.result is not None and o.result not in self.allowed(o)]

    @property
    def waits(self) -> list[float]:
        return sorted(o.wait for o in self.observations)

    @property
    def bound(self) -> float:
        return 3 * self.config.lock_timeout

    def summary(self) -> dict:
        waits = self.waits
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else 0.0
        return {
            "config": self.config.label,
            "swap_scope_passed": self.scope_passed,
            "nights": len(self.nights),
            "failed_tables": len(self.failed_tables),
            "statements": len(self.observations),
            "reader_errors": len(self.errors),
            "error_kinds": dict(Counter((o.error or "").split(":")[0] for o in self.errors)),
            "mixed_results": len(self.mixed),
            "neither_night_results": len(self.neither_night),
            "wait_median_s": round(statistics.median(waits), 4) if waits else 0.0,
            "wait_p99_s": round(p99, 4),
            "wait_max_s": round(waits[-1], 3) if waits else 0.0,
            "waits_over_bound": sum(1 for w in waits if w > self.bound),
            "bound_s": self.bound,
            "server_deadlocks": self.deadlocks,
            "objects_lost": len(self.lost),
        }

    @property
    def clean(self) -> bool:
        s = self.summary()
        return (s["failed_tables"] == 0 and s["reader_errors"] == 0 and s["mixed_results"] == 0
                and s["neither_night_results"] == 0 and s["waits_over_bound"] == 0
                and s["server_deadlocks"] == 0 and s["objects_lost"] == 0)


# ---------------------------------------------------------------------- the worker
def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTCOPY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_accepts_swap_scope() -> bool:
    """Whether `nightcopy copy` has --swap-scope (issue 14 adds it)."""
    proc = subprocess.run([sys.executable, "-m", "nightcopy", "copy", "--help"],
                          capture_output=True, text=True, env=_worker_env(), timeout=60)
    return "--swap-scope" in proc.stdout


def run_worker(source: str, target: str, config: StressConfig, run_id: str,
               pass_scope: bool) -> tuple[int, list[tuple[str, str]], str]:
    args = [sys.executable, "-m", "nightcopy", "copy", "--source", source, "--target", target,
            "--tables", ",".join(world.TABLES), "--jobs", str(config.jobs),
            "--strategy", config.strategy, "--lock-timeout", f"{config.lock_timeout:g}",
            "--run-id", run_id]
    if config.lock_attempts is not None:
        args += ["--lock-attempts", str(config.lock_attempts)]
    if pass_scope and config.swap_scope and config.strategy == "swap":
        args += ["--swap-scope", config.swap_scope]
    proc = subprocess.run(args, capture_output=True, text=True, env=_worker_env(), timeout=600)
    failed = []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "table_failed":
            failed.append((event.get("table", "?"), event.get("error", "?")))
    return proc.returncode, failed, proc.stderr


def _deadlocks(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            return int(one(cur)[0])
    finally:
        conn.close()


def settled_deadlocks(dsn: str, app_prefix: str = "nightcopy:") -> int:
    """The target's deadlock counter once the worker's sessions are gone (a backend reports
    its counts when it exits)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                            (app_prefix + "%",))
                if one(cur)[0] == 0:
                    break
                time.sleep(0.05)
    finally:
        conn.close()
    time.sleep(0.2)
    return _deadlocks(dsn)


# ---------------------------------------------------------------------- the nights
def run_stress(source: str, target: str, config: StressConfig, *, pass_scope: bool | None = None,
               log=lambda message: None) -> StressResult:
    """Run config.nights nights on the (empty) source and target databases."""
    if pass_scope is None:
        pass_scope = config.swap_scope is not None and worker_accepts_swap_scope()
    tag = (f"stress-{config.label.replace('/', '-').replace(' ', '').replace('(', '-')}"
           f"-{os.getpid()}-{int(time.time())}").replace(")", "")
    world.setup_source(source, config.sizes)
    expected = {0: world.expected_results(source)}
    code, failed, stderr = run_worker(source, target, config, f"{tag}-night-0", pass_scope)
    if code != 0:
        raise RuntimeError(f"night 0 (the first copy into the empty target) failed: "
                           f"{failed or stderr.strip()[-500:]}")
    world.ensure_reader_role(target)
    world.setup_target_objects(target, config.matview)
    before = settled_deadlocks(target)
    readers = start_readers(world.reader_dsn(target), config.readers)
    nights: list[Night] = []
    try:
        time.sleep(config.between_nights)
        for n in range(1, config.nights + 1):
            world.write_night(source, n, config.sizes)
            expected[n] = world.expected_results(source)
            t0 = time.monotonic()
            code, failed, stderr = run_worker(source, target, config, f"{tag}-night-{n}",
                                              pass_scope)
            nights.append(Night(n, t0, time.monotonic(), code, failed, stderr))
            log(f"{config.label}: night {n}: exit {code}, {len(failed)} failed table(s)")
            time.sleep(config.between_nights)
    finally:
        observations = stop_readers(readers)
    deadlocks = settled_deadlocks(target) - before
    return StressResult(config, pass_scope, nights, observations, expected, deadlocks,
                        world.lost_objects(target, config.matview))
