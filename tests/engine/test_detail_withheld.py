"""Row values in server errors (issue 12): PostgreSQL's DETAIL ("Failing row contains (...)",
"Key (email)=(...)") and the value a data exception quotes never reach a message nightcopy
makes (events, ledger, report, Slack); NIGHTCOPY_DEBUG=1 prints them on stderr only. DETAILs
that name objects (which view depends on a table) stay: they name the fix.

The load's CHECK and unique-index cases through `nightcopy copy` are in tests/security; these
are the siblings: each class of server error against a real server, and the foreign-key
warning.
"""

from __future__ import annotations

import psycopg2
import pytest

from nightcopy.engine.failure_messages import WITHHELD, explain, pg_message

VALUE = "ssn-987-65-4320"


def _error(db, setup: str, failing: str) -> psycopg2.Error:
    db.execute(setup)
    conn = db.connect()
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error) as info:
            cur.execute(failing)
        return info.value
    finally:
        conn.close()


def _check_violation(db) -> psycopg2.Error:
    return _error(db, "CREATE TABLE people (id int, ssn text CHECK (ssn LIKE 'xxx%'))",
                  f"INSERT INTO people VALUES (1, '{VALUE}')")


def test_a_check_violation_keeps_its_primary_message_and_a_hint(dbs, monkeypatch):
    monkeypatch.delenv("NIGHTCOPY_DEBUG", raising=False)
    exc = _check_violation(dbs.target)
    assert VALUE in exc.diag.message_detail  # what PostgreSQL says
    message = explain("public.people", exc)
    assert VALUE not in message and "Failing row" not in message
    assert 'violates check constraint "people_ssn_check"' in message
    assert WITHHELD in message and "fix the rows or the constraint" in message


@pytest.mark.parametrize(("setup", "failing"), [
    ("CREATE TABLE u (email text UNIQUE); INSERT INTO u VALUES ('ssn-987-65-4320')",
     "INSERT INTO u VALUES ('ssn-987-65-4320')"),
    ("CREATE TABLE d (email text); INSERT INTO d VALUES ('ssn-987-65-4320'), "
     "('ssn-987-65-4320')", "CREATE UNIQUE INDEX d_email ON d (email)"),
    ("CREATE TABLE p (id text PRIMARY KEY); CREATE TABLE c (p text REFERENCES p)",
     "INSERT INTO c VALUES ('ssn-987-65-4320')"),
    ("CREATE TABLE n (id int, v text NOT NULL)", "INSERT INTO n VALUES (1, NULL)"),
    ("CREATE TABLE r (id text) PARTITION BY LIST (id); "
     "CREATE TABLE r1 PARTITION OF r FOR VALUES IN ('a')", "INSERT INTO r VALUES ('ssn-987-65-4320')"),
    ("SELECT 1", "SELECT 'ssn-987-65-4320'::int"),
    ("SELECT 1", "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'ssn-987-65-4320'; END $$"),
], ids=["unique", "unique-index-build", "foreign-key", "not-null", "partition-routing",
        "data-exception", "raise"])
def test_no_error_class_lets_a_row_value_through(dbs, setup, failing, monkeypatch):
    monkeypatch.delenv("NIGHTCOPY_DEBUG", raising=False)
    exc = _error(dbs.target, setup, failing)
    message = pg_message(exc)
    assert VALUE not in message, message
    assert "\n" not in message
    assert exc.diag.message_primary.split('"')[0] in message  # the primary message stays


def test_debug_prints_the_detail_on_stderr_only(dbs, monkeypatch, capsys):
    monkeypatch.setenv("NIGHTCOPY_DEBUG", "1")
    message = pg_message(_check_violation(dbs.target))
    assert VALUE not in message
    err = capsys.readouterr().err
    assert err.startswith("nightcopy: debug: SQLSTATE 23514") and VALUE in err


def test_a_detail_naming_objects_is_kept(dbs, monkeypatch):
    monkeypatch.delenv("NIGHTCOPY_DEBUG", raising=False)
    exc = _error(dbs.target, "CREATE TABLE t (id int); CREATE VIEW v AS SELECT * FROM t",
                 "DROP TABLE t")
    message = explain("public.t", exc)
    assert "(view v depends on table t)" in message and WITHHELD not in message


def test_a_foreign_key_warning_carries_no_key_value(copy, dbs):
    """A key that does not validate is left NOT VALID with a warning (test_fk_warnings): the
    warning names the key, never the missing parent's value from PostgreSQL's DETAIL."""
    dbs.source.execute("""
        CREATE TABLE public.parent (id int PRIMARY KEY);
        CREATE TABLE public.child (id int PRIMARY KEY,
                                   parent_id int CONSTRAINT child_parent_fk REFERENCES public.parent);
        INSERT INTO public.parent VALUES (1); INSERT INTO public.child VALUES (1, 1);""")
    assert copy("public.parent,public.child").returncode == 0
    dbs.target.execute("CREATE RULE parent_rule AS ON DELETE TO public.parent DO INSTEAD NOTHING")
    dbs.source.execute("INSERT INTO public.parent VALUES (987654321); "
                       "INSERT INTO public.child VALUES (2, 987654321)")
    result = copy("public.parent,public.child")
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("foreign key child_parent_fk left NOT VALID" in w for w in warnings), warnings
    assert "987654321" not in result.stdout + result.stderr
