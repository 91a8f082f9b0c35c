"""One snapshot of the source for every table of an invocation.

An exporter transaction (REPEATABLE READ, READ ONLY) calls pg_export_snapshot() and stays open
for the whole run; each worker connection imports that snapshot with SET TRANSACTION SNAPSHOT,
so all tables are read as of the same instant. A worker whose connection broke can import it
again while the exporter lives; only when the exporter is gone does a retry take a new snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from nightcopy.engine.connection import Connection, apply_settings, connect
from nightcopy.engine.pg_rows import fetch_value

# Source sessions idle in their snapshot transaction while the target builds indexes.
SOURCE_SETTINGS = {"idle_in_transaction_session_timeout": "12h"}


def begin_snapshot_transaction(conn: Connection, snapshot_id: str | None) -> str:
    """Start the read transaction (importing snapshot_id if given); returns the snapshot id."""
    conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
    with conn.cursor() as cur:
        if snapshot_id:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))
        # With RLS, COPY would silently return fewer rows; off makes it fail loudly instead.
        cur.execute("SET LOCAL row_security = off")
        apply_settings(cur, conn.nightcopy_settings, local=True)
        if snapshot_id:
            return snapshot_id
        return str(fetch_value(cur, "SELECT pg_catalog.pg_export_snapshot()"))


@dataclass(frozen=True)
class Standby:
    """The source is a hot standby (a read replica): what decides whether the primary's cleanup
    may cancel the copy (a recovery conflict), and how old the snapshot's data is."""
    hot_standby_feedback: bool
    max_standby_streaming_delay: str  # as the server shows it: "30s", "-1" (wait forever)
    age_seconds: float | None  # the snapshot's age: now minus the last replayed commit

    def conflict_warning(self) -> str | None:
        """Why a long copy may be cancelled here, with the fix; None when it may not."""
        if self.hot_standby_feedback or self.max_standby_streaming_delay == "-1":
            return None
        return ("the source is a hot standby with hot_standby_feedback off "
                f"(max_standby_streaming_delay {self.max_standby_streaming_delay}): the "
                "primary's cleanup can cancel this copy (a recovery conflict; nightcopy then "
                "retries the table from a new snapshot); set hot_standby_feedback = on on the "
                "replica (RDS: its parameter group), or raise max_standby_streaming_delay")


_STANDBY_SQL = """
SELECT pg_catalog.pg_is_in_recovery(),
       pg_catalog.current_setting('hot_standby_feedback') = 'on',
       pg_catalog.current_setting('max_standby_streaming_delay'),
       extract(epoch FROM pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp())::float8"""


class Snapshot:
    """The exporter connection and its snapshot id."""

    def __init__(self, source_dsn: str, application_name: str):
        self.source_dsn = source_dsn
        self.application_name = application_name
        self.conn = connect(source_dsn, "source", application_name,
                                   settings=SOURCE_SETTINGS)
        self.id = begin_snapshot_transaction(self.conn, None)
        with self.conn.cursor() as cur:  # in the snapshot's transaction: now() is its time
            cur.execute(_STANDBY_SQL)
            row = cur.fetchone()
        assert row is not None  # a SELECT without FROM returns its one row
        recovering, feedback, delay, age = row
        self.standby = (Standby(bool(feedback), str(delay),
                                None if age is None else round(max(float(age), 0.0), 3))
                        if recovering else None)
        # Given to the worker connections at connect time (the mask key: column_masks).
        self.worker_startup_settings: dict[str, str] = {}

    def open_worker_connection(self, application_name: str) -> tuple[Connection, bool]:
        """A source connection reading this snapshot; (conn, fresh) where fresh means the
        exporter was gone and the connection has a snapshot of its own."""
        conn = connect(self.source_dsn, "source", application_name,
                       settings=SOURCE_SETTINGS, startup_settings=self.worker_startup_settings)
        try:
            begin_snapshot_transaction(conn, self.id)
            return conn, False
        except Exception:
            conn.rollback()
            begin_snapshot_transaction(conn, None)
            return conn, True

    def close(self) -> None:
        try:
            self.conn.rollback()
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a possibly broken connection
            pass
