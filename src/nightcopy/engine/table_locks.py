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
from nightcopy.engine.swap_units import LockBudgetSpent
from nightcopy.errors import ConfigError, TableError

# What a lock wait cut short by lock_timeout (or a deadlock) raises: worth another try.
# A serialization failure (a user's own session, issue 14) is retried the same way.
LOCK_ERRORS: tuple[type[BaseException], ...] = (
    psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected,
    psycopg2.errors.SerializationFailure, LockBudgetSpent)


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


# The run lock's key: hashtext('nightcopy') and hashtext(table), held by the invocation's
# session for the whole run (staged tables outlive the load's transaction now, docs/swap.md).
_RUN_LOCK_KEY = "pg_catalog.hashtext('nightcopy'), pg_catalog.hashtext(%s)"


# Of the target's shared lock table, the share one invocation's run locks may take: the rest is
# for its own load and swap transactions, the other groups' workers and the readers.
_RUN_LOCK_SHARE = 0.75


def check_lock_capacity(conn: connection, table_count: int) -> None:
    """Refuse, before anything is written, a group whose run locks (one per table, held until
    the invocation ends) would not fit the target's shared lock table: PostgreSQL sizes it for
    max_locks_per_transaction x (max_connections + max_prepared_transactions) locks, and a full
    one fails every session of the server with "out of shared memory"."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.current_setting('max_locks_per_transaction')::int, "
                    "pg_catalog.current_setting('max_connections')::int, "
                    "pg_catalog.current_setting('max_prepared_transactions')::int")
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    per_process, connections, prepared = (int(v) for v in row)
    slots = connections + prepared
    fits = int(per_process * slots * _RUN_LOCK_SHARE)
    if table_count <= fits:
        return
    needed = -(-table_count // int(slots * _RUN_LOCK_SHARE))  # ceiling
    raise ConfigError(
        f"{table_count} tables in one invocation do not fit the target's lock table: the run "
        "holds one lock per table until it ends, and the target holds about "
        f"{per_process * slots} locks (max_locks_per_transaction {per_process} x "
        f"(max_connections {connections} + max_prepared_transactions {prepared})); split the "
        f"group into groups of at most {fits} tables, or raise max_locks_per_transaction on "
        f"the target to at least {needed} (a server restart)")


def lock_tables_for_run(conn: connection, tables: list[str]) -> dict[str, str]:
    """Two runs must not copy the same table at once: a session advisory lock per table,
    taken by the invocation's own session and kept until it ends (a killed run's session ends
    with it). Returns, for each table another session holds, the message its failure says."""
    refused: dict[str, str] = {}
    with conn.cursor() as cur:
        for table in tables:
            if not fetch_value(cur, f"SELECT pg_catalog.pg_try_advisory_lock({_RUN_LOCK_KEY})",
                               (table,)):
                refused[table] = _held_by_another_run(cur, table)
    conn.commit()
    return refused


def _held_by_another_run(cur: cursor, table: str) -> str:
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
    return (f"{table} is being copied right now by {holder}; "
            "two runs never copy the same table at once: wait for it to finish")


def try_run_lock(cur: cursor, table: str) -> bool:
    """The run lock of a table this run does not copy (to clear its staged leftover)."""
    return bool(fetch_value(cur, f"SELECT pg_catalog.pg_try_advisory_lock({_RUN_LOCK_KEY})",
                            (table,)))


def release_run_lock(cur: cursor, table: str) -> None:
    cur.execute(f"SELECT pg_catalog.pg_advisory_unlock({_RUN_LOCK_KEY})", (table,))


def with_lock_retries(cur: cursor, body: Callable[[], None], policy: LockRetryPolicy,
                      table: str, what: str, on_wait: Callable[[float], None],
                      on_failed_try: Callable[[BaseException], None] | None = None,
                      blockers: Callable[[], str] | None = None) -> None:
    """Run body() under a savepoint with a short lock_timeout, retrying with backoff.

    For a step inside the table's transaction: a failed try rolls back to the savepoint only.
    on_wait(seconds) is told of each lock wait that timed out."""

    def one_try() -> None:
        cur.execute("SAVEPOINT nightcopy_lock")
        cur.execute(f"SET LOCAL lock_timeout = '{policy.timeout_ms}ms'")
        t0 = time.monotonic()
        try:
            body()
        except LOCK_ERRORS as exc:
            on_wait(time.monotonic() - t0)
            cur.execute("ROLLBACK TO SAVEPOINT nightcopy_lock")
            if on_failed_try is not None:
                on_failed_try(exc)
                # Back to the savepoint again: nothing the diagnosis touched stays held while
                # the worker backs off.
                cur.execute("ROLLBACK TO SAVEPOINT nightcopy_lock")
            raise
        cur.execute("SET LOCAL lock_timeout = 0")
        cur.execute("RELEASE SAVEPOINT nightcopy_lock")

    try:
        for attempt in policy.retrying(reraise=False):
            with attempt:
                one_try()
    except RetryError:
        held = blockers() if blockers is not None else ""
        exhausted = TableError(
            f"{table}: could not {what} within {policy.attempts} tries of "
            f"{policy.timeout:g}s: other sessions on the target hold locks on "
            f"it ({held or 'long queries? see pg_locks'}); retry later, raise --lock-timeout "
            "or set --cancel-blockers-after")
        exhausted.transient = True  # the report's `retryable` (invocation_report.is_transient)
        raise exhausted from None


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
