"""Server-side phase profile: sample pg_stat_activity while a method runs (scripts/bench
--activity) and add up backend-seconds per kind of work (COPY out/in, index builds, ANALYZE, lock
waits, idle in transaction, ...). It answers "where does the time go" for every method alike,
nightcopy or not, without touching the engine. Sampling costs one small query per server per
interval, so it is opt-in and its runs are not the ones to quote for speed."""

from __future__ import annotations

import re
import threading
import time

import psycopg2

_KINDS = [
    ("COPY out", re.compile(r"^\s*copy\b.*\bto\s+stdout", re.I | re.S)),
    ("COPY in", re.compile(r"^\s*copy\b.*\bfrom\s+stdin", re.I | re.S)),
    ("index build", re.compile(r"^\s*(create\s+(unique\s+)?index|alter\s+table\b.*\badd\s+constraint\b.*\b(primary\s+key|unique|exclude)\b)", re.I | re.S)),
    ("FK / check", re.compile(r"^\s*alter\s+table\b.*\b(foreign\s+key|validate\s+constraint|check)\b", re.I | re.S)),
    ("ANALYZE/VACUUM", re.compile(r"^\s*(analyze|vacuum)\b", re.I)),
    ("DDL", re.compile(r"^\s*(create|alter|drop|comment|grant|revoke|set\s+schema)\b", re.I)),
    ("catalog/other query", re.compile(r".", re.S)),
]

SQL = """
SELECT state, wait_event_type, backend_type, query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND datname = %s
  AND backend_type IN ('client backend', 'autovacuum worker', 'parallel worker')
"""


def classify(state: str | None, wait_type: str | None, backend_type: str, query: str) -> str | None:
    if backend_type == "autovacuum worker":
        return "autovacuum"
    if state == "idle in transaction":
        return "idle in transaction"
    if state != "active":
        return None
    if wait_type == "Lock":
        return "lock wait"
    for name, rx in _KINDS:
        if rx.search(query or ""):
            return name
    return None


class ActivitySampler:
    """Samples each (label, admin DSN, database) every `interval` seconds in a thread."""

    def __init__(self, targets: list[tuple[str, str, str]], interval: float = 0.1) -> None:
        self.targets = targets
        self.interval = interval
        self.seconds: dict[str, dict[str, float]] = {label: {} for label, _, _ in targets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._conns = []
        for _, dsn, _ in self.targets:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            self._conns.append(conn)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            c.close()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            # credit each sample with the real time since the previous one (the queries take a
            # moment too), so the totals are backend-seconds, not sample counts
            now = time.monotonic()
            dt, last = now - last, now
            for (label, _, db), conn in zip(self.targets, self._conns, strict=True):
                try:
                    with conn.cursor() as cur:
                        cur.execute(SQL, (db,))
                        rows = cur.fetchall()
                except psycopg2.Error:
                    continue
                bucket = self.seconds[label]
                for state, wait_type, backend_type, query in rows:
                    kind = classify(state, wait_type, backend_type, query)
                    if kind:
                        bucket[kind] = bucket.get(kind, 0.0) + dt
            self._stop.wait(self.interval)
