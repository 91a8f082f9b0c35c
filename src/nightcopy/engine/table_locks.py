"""Locks on the target: the per-table advisory run lock, the lock-retry policy, and the order
in which a swap or truncate takes its table locks.

Every lock request is bounded by a short lock_timeout and retried with backoff, so reporting
queries that queue behind our request are never blocked for longer than that one wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection, cursor
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from nightcopy.engine.pg_rows import fetch_value
from nightcopy.errors import TableError

# What a lock wait cut short by lock_timeout (or a deadlock) raises: worth another try.
LOCK_ERRORS = (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected)


@dataclass(frozen=True)
class LockRetryPolicy:
    timeout: float  # seconds one lock wait may block readers queued behind it
    attempts: int

    @property
    def timeout_ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    def retrying(self, *, reraise: bool) -> Retrying:
        """Tries of a lock-taking step: LOCK_ERRORS retried with jittered exponential backoff."""
        return Retrying(stop=stop_after_attempt(self.attempts),
                        wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
                        retry=retry_if_exception_type(LOCK_ERRORS), reraise=reraise)


def lock_table_for_run(cur: cursor, table: str) -> None:
    """Two runs must not copy the same table at once: a transaction advisory lock."""
    if fetch_value(cur, "SELECT pg_catalog.pg_try_advisory_xact_lock("
                   "pg_catalog.hashtext('nightcopy'), pg_catalog.hashtext(%s))", (table,)):
        return
    cur.execute("""
        SELECT a.pid, a.application_name FROM pg_catalog.pg_locks l
          JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
           AND l.classid = pg_catalog.hashtext('nightcopy')::oid
           AND l.objid = pg_catalog.hashtext(%s)::oid
           AND l.database = (SELECT oid FROM pg_catalog.pg_database
                              WHERE datname = pg_catalog.current_database())""", (table,))
    row = cur.fetchone()
    holder = f"{row[1] or 'another session'} (pid {row[0]})" if row else "another run"
    raise TableError(f"{table} is being copied right now by {holder}; "
                     "two runs never copy the same table at once: wait for it to finish")


def with_lock_retries(cur: cursor, body: Callable[[], None], policy: LockRetryPolicy,
                      table: str, what: str, on_wait: Callable[[float], None]) -> None:
    """Run body() under a savepoint with a short lock_timeout, retrying with backoff.

    For a step inside the table's transaction: a failed try rolls back to the savepoint only.
    on_wait(seconds) is told of each lock wait that timed out."""

    def one_try() -> None:
        cur.execute("SAVEPOINT nightcopy_lock")
        cur.execute(f"SET LOCAL lock_timeout = '{policy.timeout_ms}ms'")
        t0 = time.monotonic()
        try:
            body()
        except LOCK_ERRORS:
            on_wait(time.monotonic() - t0)
            cur.execute("ROLLBACK TO SAVEPOINT nightcopy_lock")
            raise
        cur.execute("SET LOCAL lock_timeout = 0")
        cur.execute("RELEASE SAVEPOINT nightcopy_lock")

    try:
        for attempt in policy.retrying(reraise=False):
            with attempt:
                one_try()
    except RetryError:
        raise TableError(
            f"{table}: could not {what} within {policy.attempts} tries of "
            f"{policy.timeout:g}s: other sessions on the target hold locks on "
            "it (long queries? see pg_locks); retry later or raise --lock-timeout") from None


def run_with_lock_retries(conn: connection, statement: str, policy: LockRetryPolicy) -> None:
    """One statement in its own transaction with a short lock_timeout, retried with backoff;
    the last try's error is raised when none succeeds."""
    for attempt in policy.retrying(reraise=True):
        with attempt:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{policy.timeout_ms}ms'")
                    cur.execute(statement)
                conn.commit()
            except psycopg2.Error:
                conn.rollback()
                raise


def lock_in_order(cur: cursor, table: str, incoming_from: list[str], referenced: list[str]
                  ) -> None:
    """Lock the table and the tables its swap touches in one global (name) order.

    Dropping the old table also locks the tables its foreign keys reference, and dropping
    a listed child's foreign key locks the child; taking all of them in the same order in
    every worker keeps two swaps from deadlocking. (Dropping a foreign key's triggers
    takes ACCESS EXCLUSIVE on the referenced table too, for the few milliseconds until
    the swap commits.)"""
    for name in sorted({table, *incoming_from, *referenced}):
        cur.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
