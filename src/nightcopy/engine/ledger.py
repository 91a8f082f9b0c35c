"""The ledger: a small schema in the target database recording invocations and table results.

Vocabulary: a *run* is the night (one run id shared by every group); an *invocation* is one
group's worker in a run (`nightcopy copy`; a retried worker resumes the same invocation row);
a *ledger row* is a row of these tables. `invocations` holds one row per run id and group,
`table_results` one per run id and table. Their figure columns (`tables`, `failed`, `rows`,
`bytes`, `seconds`) keep the names of the run_summary / table_copied fields they record.

It is never copied (globs skip it). A table's result row is written in the same transaction as
its swap commit, so "recorded as copied" and "really swapped in" can never disagree, also after
a kill -9.

Versions (`nightcopy.meta` key `schema_version`): 1 named the invocations table `runs`; 2 renames
it and leaves a view `nightcopy.runs` over it, so a release that knows only version 1 (which
never checks the version) keeps working against the same reporting database. A ledger newer
than this release knows is refused before anything is written: its meaning may have changed.
3 adds `managed_tables`: every target table nightcopy created or replaced (or adopted), by oid,
written in the same transaction as the swap or the load; a glob replaces only those (issue 12,
engine/table_guard.py). Its migration seeds it with the tables whose latest result was copied.
4 adds `table_definitions` (issue 17): each table's definition as copied, one row per run id
and table, written in the transaction of its swap or load; the schema-drift report
(engine/schema_drift.py) compares tonight's source definition with the latest one recorded.
"""

from __future__ import annotations

import json
import socket

import psycopg2
from psycopg2.extensions import connection, cursor

from nightcopy import __version__
from nightcopy.engine.copied_functions import COPIED_MARK
from nightcopy.engine.target_catalog import schema_owners
from nightcopy.errors import NightcopyError
from nightcopy.secrets import scrub

LEDGER_SCHEMA = "nightcopy"
LEDGER_VERSION = 4
INVOCATIONS = f"{LEDGER_SCHEMA}.invocations"
TABLE_RESULTS = f"{LEDGER_SCHEMA}.table_results"
MANAGED_TABLES = f"{LEDGER_SCHEMA}.managed_tables"
TABLE_DEFINITIONS = f"{LEDGER_SCHEMA}.table_definitions"
COPIED_FUNCTIONS = f"{LEDGER_SCHEMA}.copied_functions"
_COPIED_MARK_SQL = "'" + COPIED_MARK.replace("'", "''") + "'"
# The invocations table's name in each ledger version (readers accept every older version).
_INVOCATIONS_BY_VERSION = {1: f"{LEDGER_SCHEMA}.runs", 2: INVOCATIONS, 3: INVOCATIONS,
                           4: INVOCATIONS}

_INVOCATIONS_COMMENT = (
    f"COMMENT ON TABLE {INVOCATIONS} IS 'one row per invocation: a group''s worker in a run "
    "(run_id = the night, group_name); a retried worker resumes and updates its row; seconds "
    "is its work time, summed over its attempts'")
# For releases that know only ledger version 1: they read and write nightcopy.runs (a simple
# view is updatable, INSERT ... ON CONFLICT included). Drop it in a later version.
_RUNS_VIEW = (
    f"CREATE VIEW {LEDGER_SCHEMA}.runs AS SELECT * FROM {INVOCATIONS};"
    f"COMMENT ON VIEW {LEDGER_SCHEMA}.runs IS 'ledger version 1 name of {INVOCATIONS}, kept for "
    "older nightcopy releases'")

# By oid, not by name: a table someone else creates under a recorded name (after dropping or
# renaming nightcopy's) is not nightcopy's. The name is what it was when recorded, for people.
_MANAGED_TABLES_DDL = f"""
CREATE TABLE {MANAGED_TABLES} (
    table_oid   oid PRIMARY KEY,
    table_name  text NOT NULL,            -- format('%I.%I', schema, table) when recorded
    run_id      text NOT NULL,            -- the run that created, replaced or adopted it
    recorded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {MANAGED_TABLES} IS 'the target tables nightcopy created, replaced or '
    'adopted, by oid: a glob in a table list replaces only these';
"""

# Version 4 (issue 17): the definitions as copied, for the schema-drift report. Its own
# statements, so that another version-4 addition joins it without touching these.
_TABLE_DEFINITIONS_DDL = f"""
CREATE TABLE {TABLE_DEFINITIONS} (
    run_id      text NOT NULL,
    table_name  text NOT NULL,            -- format('%I.%I', schema, table)
    definition  jsonb NOT NULL,           -- engine/schema_drift.definition_of
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name)
);
CREATE INDEX table_definitions_latest_idx ON {TABLE_DEFINITIONS} (table_name, recorded_at);
COMMENT ON TABLE {TABLE_DEFINITIONS} IS 'each table''s source definition as copied, per run: '
    'what the schema-drift report compares tonight''s definition with';
-- The shrink guard reads each table's latest copied row count before every load: without this
-- index that is a scan of every result of every night.
CREATE INDEX table_results_table_idx ON {TABLE_RESULTS} (table_name, finished_at);
"""


def _copied_functions_ddl() -> str:
    """The functions nightcopy copied to the target under --trust (engine/copied_functions),
    by signature and oid: a later night refreshes only these, never another role's function
    of the same signature (one created under that name after nightcopy's was dropped has
    another oid)."""
    return f"""
CREATE TABLE {COPIED_FUNCTIONS} (
    signature    text PRIMARY KEY,        -- schema.name(argument types), as on the source
    function_oid oid NOT NULL,            -- the target's pg_proc oid
    run_id       text NOT NULL,           -- the run that created or last refreshed it
    copied_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {COPIED_FUNCTIONS} IS 'the functions nightcopy copied from the source under '
    '--trust: a later night may replace only these';
"""


def _copied_functions_migration() -> str:
    """Version 3 to 4: the copied-functions table, seeded with what ledgers before it recorded
    on the function itself (owned by the worker's role, nightcopy's comment)."""
    return _copied_functions_ddl() + f"""
-- signatures as the worker's sessions print them: every name schema-qualified
SELECT pg_catalog.set_config('search_path', '', true);
INSERT INTO {COPIED_FUNCTIONS} (signature, function_oid, run_id)
SELECT p.oid::pg_catalog.regprocedure::text, p.oid, 'before ledger version 4'
  FROM pg_catalog.pg_proc p
 WHERE p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
   AND pg_catalog.obj_description(p.oid, 'pg_proc') = {_COPIED_MARK_SQL}
ON CONFLICT (signature) DO NOTHING;
"""


# What an upgrade from version 2 records: the tables whose latest result is `copied`, under
# their current oid (one recreated by someone else since then is taken as it stands: the
# ledger cannot know). Also what readers of an older ledger take as recorded.
_SEED_SQL = f"""
SELECT c.oid, latest.table_name, latest.run_id
  FROM (SELECT DISTINCT ON (table_name) table_name, run_id, status
          FROM {TABLE_RESULTS} ORDER BY table_name, finished_at DESC) latest
  JOIN pg_catalog.pg_class c ON true
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   AND pg_catalog.format('%I.%I', n.nspname, c.relname) = latest.table_name
 WHERE latest.status = 'copied' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""

# The latest version, for a target that has no ledger yet.
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA};
CREATE TABLE IF NOT EXISTS {LEDGER_SCHEMA}.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE {INVOCATIONS} (
    run_id            text NOT NULL,
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- running | succeeded | failed | interrupted
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    tables            integer,
    failed            integer,
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    host              text,
    nightcopy_version text,
    options           jsonb,
    PRIMARY KEY (run_id, group_name)
);
{_INVOCATIONS_COMMENT};
CREATE TABLE {TABLE_RESULTS} (
    run_id            text NOT NULL,
    table_name        text NOT NULL,          -- format('%I.%I', schema, table)
    group_name        text NOT NULL DEFAULT '',
    status            text NOT NULL,          -- copied | failed
    rows              bigint,
    bytes             bigint,
    seconds           double precision,
    copy_seconds      double precision,
    index_seconds     double precision,
    lock_wait_seconds double precision,
    attempts          integer NOT NULL DEFAULT 1,
    error             text,
    started_at        timestamptz,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name)
);
CREATE INDEX table_results_finished_idx ON {TABLE_RESULTS} (finished_at);
{_RUNS_VIEW};
{_MANAGED_TABLES_DDL}
{_TABLE_DEFINITIONS_DDL}
{_copied_functions_ddl()}
"""

# MIGRATIONS[v] upgrades a ledger from version v to v + 1 (in ensure_ledger's transaction).
MIGRATIONS: dict[int, str] = {
    1: f"""
ALTER TABLE {LEDGER_SCHEMA}.runs RENAME TO invocations;
-- runs_pkey, and on PostgreSQL 18+ the named NOT NULL constraints: as a new ledger names them
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_catalog.pg_constraint
              WHERE conrelid = '{INVOCATIONS}'::regclass AND conname LIKE 'runs\\_%' LOOP
        EXECUTE format('ALTER TABLE {INVOCATIONS} RENAME CONSTRAINT %I TO %I',
                       c.conname, 'invocations_' || substr(c.conname, 6));
    END LOOP;
END $$;
{_INVOCATIONS_COMMENT};
{_RUNS_VIEW};
""",
    # Seeded from the results so that glob nights keep replacing what they copied before.
    2: f"""
{_MANAGED_TABLES_DDL}
INSERT INTO {MANAGED_TABLES} (table_oid, table_name, run_id)
{_SEED_SQL};
""",
    # Version 4: the definitions as copied (schema-drift report: nothing to seed, the first
    # night after the upgrade records what it copies) and the copied functions.
    3: _TABLE_DEFINITIONS_DDL + _copied_functions_migration(),
}


class LedgerTooNew(NightcopyError):
    """The ledger was written by a newer nightcopy: this one must not read or write it."""


def _read_version(cur: cursor) -> int | None:
    """The ledger's schema_version, or None when the target has no ledger."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{LEDGER_SCHEMA}.meta",))
    if cur.fetchone() != (True,):
        return None
    cur.execute(f"SELECT value FROM {LEDGER_SCHEMA}.meta WHERE key = 'schema_version'")
    row = cur.fetchone()
    if row is None or not row[0].isdigit():
        raise NightcopyError(f"the ledger in the target (schema {LEDGER_SCHEMA}) has no valid "
                             f"schema_version in {LEDGER_SCHEMA}.meta: it was not written by "
                             "nightcopy, or was edited by hand; fix or drop that row")
    return int(row[0])


def _refuse_newer(version: int) -> None:
    if version > LEDGER_VERSION:
        raise LedgerTooNew(
            f"the ledger in the target (schema {LEDGER_SCHEMA}) is version {version}, but this "
            f"nightcopy ({__version__}) knows ledger versions up to {LEDGER_VERSION}: a newer "
            "release has upgraded it; upgrade this nightcopy to that release before using it "
            "with this database (nothing was written)")


def ensure_ledger(conn: connection) -> None:
    """Create or migrate the ledger (its own committed transaction, serialised by a lock).

    The migration runs in the same transaction as the version bump: another worker waiting on
    the lock sees either the old ledger or the new one, never half of it. Raises LedgerTooNew
    (having written nothing) when a newer release has upgraded the ledger.
    """
    try:
        with conn.cursor() as cur:
            # Two workers starting at once would race on CREATE SCHEMA IF NOT EXISTS, and two
            # upgrading workers on the migration. Releases knowing only version 1 take it too.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('nightcopy.ledger'))")
            # Before anything is read or written there: a schema another role created first
            # could hold a ledger with a trigger that fires as the worker.
            schema_owners.refuse_foreign(cur, LEDGER_SCHEMA, "the run ledger")
            version = _read_version(cur)
            if version is None:
                cur.execute(_DDL)
                cur.execute(
                    f"INSERT INTO {LEDGER_SCHEMA}.meta VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (str(LEDGER_VERSION),),
                )
            elif version < LEDGER_VERSION:
                _migrate(cur, version)
            else:
                _refuse_newer(version)
    except NightcopyError:
        conn.rollback()
        raise
    conn.commit()


def _migrate(cur: cursor, version: int) -> None:
    try:
        for v in range(version, LEDGER_VERSION):
            cur.execute(MIGRATIONS[v])
        cur.execute(f"UPDATE {LEDGER_SCHEMA}.meta SET value = %s WHERE key = 'schema_version'",
                    (str(LEDGER_VERSION),))
    except psycopg2.Error as exc:
        # The caller's rollback undoes every step: the ledger stays at `version`, rows intact.
        diag = getattr(exc, "diag", None)
        reason = (diag.message_primary if diag is not None else None) or str(exc).strip()
        raise NightcopyError(
            f"cannot upgrade the ledger in the target (schema {LEDGER_SCHEMA}) from version "
            f"{version} to {LEDGER_VERSION}: {scrub(reason.splitlines()[0])}; it was left as "
            f"it was (fix that, e.g. an object of that name created by hand, and rerun)"
        ) from None


def readable_ledger(conn: connection) -> str | None:
    """For readers (history, timings, plan): the invocations table's name in this ledger, or
    None when there is no ledger. Writes nothing: an older ledger is read as it is (the next
    worker upgrades it); a newer one raises LedgerTooNew."""
    try:
        with conn.cursor() as cur:
            version = _read_version(cur)
    finally:
        conn.rollback()
    if version is None:
        return None
    _refuse_newer(version)
    return _INVOCATIONS_BY_VERSION[version]


def finished_tables(conn: connection, run_id: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT table_name FROM {TABLE_RESULTS}"
            " WHERE run_id = %s AND status = 'copied'",
            (run_id,),
        )
        rows = cur.fetchall()
    conn.commit()
    return {r[0] for r in rows}


def start_invocation(conn: connection, run_id: str, group: str | None, options: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {INVOCATIONS}
                    (run_id, group_name, status, host, nightcopy_version, options)
                VALUES (%s, %s, 'running', %s, %s, %s)
                ON CONFLICT (run_id, group_name) DO UPDATE
                   SET status = 'running', finished_at = NULL""",
            (run_id, group or "", socket.gethostname(), __version__, json.dumps(options)),
        )
    conn.commit()


# An invocation whose worker was stopped (Ctrl-C, SIGTERM to `nightcopy run`) before it finished:
# its tables are as the worker contract leaves them, and the same run id resumes it. A status
# value only (the column is text): no schema change, older readers show it as it is.
INTERRUPTED = "interrupted"


def mark_interrupted(conn: connection, run_id: str, worked: dict[str, float]) -> int:
    """The given groups' invocations of run_id still recorded as running become interrupted
    (finished now), each adding the seconds its stopped worker ran (group -> seconds) to its
    work time; how many did."""
    count = 0
    with conn.cursor() as cur:
        for group, seconds in worked.items():
            cur.execute(
                f"""UPDATE {INVOCATIONS} SET status = %s, finished_at = now(),
                           seconds = coalesce(seconds, 0) + %s
                     WHERE run_id = %s AND group_name = %s AND status = 'running'""",
                (INTERRUPTED, seconds, run_id, group))
            count += cur.rowcount
    conn.commit()
    return count


def finish_invocation(conn: connection, run_id: str, group: str | None, summary: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"""UPDATE {INVOCATIONS}
                   SET status = %s, finished_at = now(), tables = %s, failed = %s,
                       rows = %s, bytes = %s, seconds = coalesce(seconds, 0) + %s
                 WHERE run_id = %s AND group_name = %s""",
            (summary["status"], summary["tables"], summary["failed"], summary["rows"],
             summary["bytes"], summary["seconds"], run_id, group or ""),
        )
    conn.commit()


# The names engine/invocation.py calls (that file is being split); rename its call sites after.
start_run = start_invocation
finish_run = finish_invocation


RECORD_TABLE_SQL = f"""
INSERT INTO {TABLE_RESULTS}
    (run_id, table_name, group_name, status, rows, bytes, seconds, copy_seconds,
     index_seconds, lock_wait_seconds, error, started_at, finished_at)
VALUES (%(run_id)s, %(table)s, %(group)s, %(status)s, %(rows)s, %(bytes)s, %(seconds)s,
        %(copy_seconds)s, %(index_seconds)s, %(lock_wait_seconds)s, %(error)s,
        to_timestamp(%(started_at)s), now())
ON CONFLICT (run_id, table_name) DO UPDATE SET
    group_name = EXCLUDED.group_name, status = EXCLUDED.status, rows = EXCLUDED.rows,
    bytes = EXCLUDED.bytes, seconds = EXCLUDED.seconds, copy_seconds = EXCLUDED.copy_seconds,
    index_seconds = EXCLUDED.index_seconds, lock_wait_seconds = EXCLUDED.lock_wait_seconds,
    error = EXCLUDED.error, started_at = EXCLUDED.started_at, finished_at = now(),
    attempts = {TABLE_RESULTS}.attempts + 1
"""


def managed_oids(conn: connection) -> set[int]:
    """For readers (validate): the oids of the tables a worker would take as nightcopy's, in a
    ledger of any known version (an older one as its upgrade would seed it; none without a
    ledger). Writes nothing; a newer ledger raises LedgerTooNew."""
    try:
        with conn.cursor() as cur:
            version = _read_version(cur)
            if version is None:
                return set()
            _refuse_newer(version)
            cur.execute(f"SELECT table_oid FROM {MANAGED_TABLES}" if version >= 3 else
                        f"SELECT oid FROM ({_SEED_SQL}) seeded")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.rollback()


def is_managed(cur: cursor, table_oid: int) -> bool:
    """Whether nightcopy created, replaced or adopted the target table with this oid."""
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {MANAGED_TABLES} WHERE table_oid = %s)",
                (table_oid,))
    row = cur.fetchone()
    return bool(row and row[0])


def record_managed(cur: cursor, table: str, run_id: str, replaced_oid: int | None) -> None:
    """Record the table now under the name `table` as nightcopy's, in the transaction that
    created, replaced or loaded it (so the record is exact, also after a kill -9); the table it
    replaced (`replaced_oid`, dropped by the swap) and older records of the name go."""
    cur.execute(
        f"""DELETE FROM {MANAGED_TABLES}
             WHERE (table_oid = %(replaced)s OR table_name = %(table)s)
               AND table_oid <> pg_catalog.to_regclass(%(table)s)::pg_catalog.oid;
            INSERT INTO {MANAGED_TABLES} (table_oid, table_name, run_id)
            VALUES (pg_catalog.to_regclass(%(table)s)::pg_catalog.oid, %(table)s, %(run_id)s)
            ON CONFLICT (table_oid) DO UPDATE SET table_name = EXCLUDED.table_name,
                run_id = EXCLUDED.run_id, recorded_at = now()""",
        {"table": table, "run_id": run_id, "replaced": replaced_oid})
