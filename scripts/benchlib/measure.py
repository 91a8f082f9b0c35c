"""Running client processes with their cost measured: wall time, peak RSS, CPU-seconds.

Every client process a method starts (psql, pg_dump, pgcopydb, nightcopy and their children)
goes through a Tracker:
- peak RSS comes from sampling /proc/PID/status every 100 ms over each process tree: VmHWM is the
  kernel's high-water mark of that process (so spikes between samples are not lost), VmRSS summed
  over live processes gives the peak of all clients together. wait4()'s ru_maxrss is NOT used:
  a forked child inherits the forking process's RSS as its starting maximum (the kernel carries
  the old mm's high-water mark across exec), so every child would report the benchmark's own ~30 MB.
- CPU-seconds come from wait4()'s rusage of each reaped child (user+sys, its reaped children
  included).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil


class MethodFailed(RuntimeError):
    pass


@dataclass
class ProcStats:
    max_rss_single: int = 0          # bytes, largest single client process (VmHWM)
    max_rss_sum: int = 0             # bytes, largest sum over live client processes (sampler)
    cpu_seconds: float = 0.0         # user+sys of all client processes (wait4, trees included)
    processes: int = 0
    per_process_peak: dict[str, int] = field(default_factory=dict)  # "name pid" -> bytes


class Tracker:
    """Starts processes, reaps them with wait4 and samples their trees' RSS in the background."""

    def __init__(self, env: dict[str, str] | None = None, interval: float = 0.1) -> None:
        self.env = env
        self.interval = interval
        self.stats = ProcStats()
        self._roots: list[psutil.Process] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> Tracker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                roots = list(self._roots)
            total = 0
            for root in roots:
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in procs:
                    mem = _proc_memory(p.pid)
                    if mem is None:
                        continue
                    name, rss, hwm = mem
                    total += rss
                    key = f"{name} {p.pid}"
                    with self._lock:
                        if hwm > self.stats.per_process_peak.get(key, 0):
                            self.stats.per_process_peak[key] = hwm
                        self.stats.max_rss_single = max(self.stats.max_rss_single, hwm)
            with self._lock:
                self.stats.max_rss_sum = max(self.stats.max_rss_sum, total)
            self._stop.wait(self.interval)

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(list(args), env=kwargs.pop("env", self.env), **kwargs)
        try:
            ps = psutil.Process(proc.pid)
            with self._lock:
                self._roots.append(ps)
        except psutil.NoSuchProcess:
            pass
        return proc

    def wait(self, proc: subprocess.Popen) -> int:
        """Reap with wait4 (Popen.wait would drop the rusage) and account the tree's cost."""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._roots = [r for r in self._roots if r.pid != proc.pid]
            self.stats.cpu_seconds += usage.ru_utime + usage.ru_stime
            self.stats.processes += 1
        return proc.returncode

    def run(self, args: Sequence[str], *, what: str, stdout: IO[Any] | int | None = None,
            log: Path | None = None, **kwargs: Any) -> None:
        """Run one command to completion; raise MethodFailed (with its stderr tail) on failure."""
        err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            proc = self.popen(args, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                              stderr=err, **kwargs)
            rc = self.wait(proc)
        finally:
            if log:
                err.close()  # type: ignore[union-attr]
        if rc != 0:
            raise MethodFailed(f"{what} exited {rc}" + _tail(log))

    def pipe(self, producer: Sequence[str], consumer: Sequence[str], *, what: str,
             log: Path | None = None) -> None:
        """producer | consumer, both tracked; fails if either side fails (like pipefail)."""
        err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            p1 = self.popen(producer, stdout=subprocess.PIPE, stderr=err)
            p2 = self.popen(consumer, stdin=p1.stdout, stdout=subprocess.DEVNULL, stderr=err)
            assert p1.stdout is not None
            p1.stdout.close()  # so the producer sees EPIPE if the consumer dies
            rc2 = self.wait(p2)
            rc1 = self.wait(p1)
        finally:
            if log:
                err.close()  # type: ignore[union-attr]
        if rc1 != 0 or rc2 != 0:
            raise MethodFailed(f"{what}: producer exited {rc1}, consumer {rc2}" + _tail(log))


def _proc_memory(pid: int) -> tuple[str, int, int] | None:
    """(name, VmRSS, VmHWM) in bytes from /proc/PID/status; None once the process is gone or is a
    zombie (no memory left to count)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if "VmHWM" not in fields:
        return None
    return (fields.get("Name", "?"), int(fields["VmRSS"].split()[0]) * 1024,
            int(fields["VmHWM"].split()[0]) * 1024)


def _tail(log: Path | None, n: int = 1500) -> str:
    if not log or not log.exists():
        return ""
    text = log.read_text(errors="replace")
    return "\n--- stderr tail ---\n" + text[-n:]


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
