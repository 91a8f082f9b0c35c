"""Issue 12, "Source expressions run on the target as the worker" and "Literal break-out".

The promise: nothing authored on the source is evaluated on the target with privileges beyond
evaluating itself on the copied rows. By default, an expression evaluated while loading (CHECK,
domain CHECK, generated column, index and partition expressions) may call only built-in
immutable functions and operators; a table whose definition calls anything else fails before
any data moves, with one line naming the function. And no definition text is ever read with
settings other than the ones it was written for (standard_conforming_strings).
"""

from __future__ import annotations

import select
import time

from tests.security.conftest import SECRET, World

# Evaluated on the target only (where private.salaries exists), so that the attacker's rows
# satisfy it on the source: the attacker's CHECK reads the private table as whoever evaluates it.
_ON_TARGET = "pg_catalog.to_regclass('private.salaries') IS NULL"
# A built-in that runs a query given as text (query_to_xml would do too, on servers built with
# libxml): ts_rewrite() reads its substitutions from the query, here the private rows.
_PRIVATE_ROWS = ("pg_catalog.ts_rewrite('zz'::pg_catalog.tsquery, 'select ''zz''::tsquery, "
                 "plainto_tsquery(''simple'', secret) from private.salaries')::text")


def assert_failed_before_data_moved(w: World, result, table: str, *functions: str) -> None:
    """The run fails that table with one line naming the function (any of `functions`: the
    definitions that gate their attack on to_regclass() call more than one that is not
    immutable); no row reached the target."""
    assert result.returncode == 1, f"exit {result.returncode}: the table was copied {result.stderr}"
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == [table], result.stdout
    assert any(f in failed[0]["error"] for f in functions), failed[0]["error"]
    assert not result.events_of("table_copied"), result.stdout
    assert "Traceback" not in result.stderr
    schema, name = table.split(".")
    assert w.target.scalar("SELECT pg_catalog.to_regclass(%s)", (table,)) is None, (
        f"{table} was created on the target")
    assert not w.target.scalar(
        "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage_%%' AND c.relname = %s",
        (name,))


def _notifications(conn, wait: float = 0.3) -> list[str]:
    # A NOTIFY is delivered at its transaction's commit, before the worker exits: a short
    # wait only covers the socket.
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
        conn.poll()
    return [n.payload for n in conn.notifies]


def _assert_no_rows_reach_a_listening_analyst(w: World, table: str) -> None:
    """Copy `table` while the analyst LISTENs on the target: no private row may arrive, and the
    table must fail before any data moved, naming one of the attack's functions."""
    listener = w.analyst_db.connect()
    try:
        with listener.cursor() as cur:
            cur.execute("LISTEN exfil")
        result = w.copy(table)
        received = _notifications(listener)
    finally:
        listener.close()
    assert not [p for p in received if SECRET in p], "the analyst received the private rows"
    assert_failed_before_data_moved(w, result, table, "pg_notify", "ts_rewrite", "to_regclass")


def test_check_with_notify_does_not_deliver_private_rows_to_a_listening_analyst(world: World):
    """A source CHECK calling pg_notify(ts_rewrite(..., 'select ... from private...')) must not
    deliver the private rows to an analyst LISTENing on the target, and the table must fail
    before any data moves, naming the function."""
    w = world
    w.attacker_db.execute(f"""
        CREATE TABLE app.orders (id int PRIMARY KEY, note text,
            CONSTRAINT exfil CHECK (CASE WHEN {_ON_TARGET} THEN true
                ELSE pg_catalog.pg_notify('exfil', {_PRIVATE_ROWS})::text = '' END));
        INSERT INTO app.orders VALUES (1, 'a'), (2, 'b');""")
    _assert_no_rows_reach_a_listening_analyst(w, "app.orders")


def test_check_raising_the_private_rows_keeps_them_out_of_ledger_report_and_events(world: World):
    """A source CHECK that casts the private rows to an integer makes PostgreSQL quote them in
    its error: the table must fail before any data moves (naming the function), and the private
    rows must reach neither the JSON events, stderr, the ledger nor the report."""
    w = world
    w.attacker_db.execute(f"""
        CREATE TABLE app.orders (id int PRIMARY KEY,
            CONSTRAINT exfil CHECK (CASE WHEN {_ON_TARGET} THEN true
                ELSE ({_PRIVATE_ROWS})::int > 0 END));
        INSERT INTO app.orders VALUES (1);""")
    result = w.copy("app.orders")
    for what, text in (("stdout", result.stdout), ("stderr", result.stderr),
                       ("ledger", w.ledger_text()), ("report", w.reports_text())):
        assert SECRET not in text, f"the private rows reached the {what}"
    assert_failed_before_data_moved(w, result, "app.orders", "ts_rewrite", "to_regclass")


def test_check_calling_pg_sleep_fails_before_any_data_moves(world: World):
    """A source CHECK calling pg_sleep() (or pg_terminate_backend(): any built-in that is not
    immutable) would stall the night row by row: the table fails before any data moves,
    naming the function."""
    w = world
    w.attacker_db.execute("""
        CREATE TABLE app.orders (id int PRIMARY KEY,
            CONSTRAINT stall CHECK (pg_catalog.pg_sleep(0.05)::text = ''));
        INSERT INTO app.orders VALUES (1), (2);""")
    result = w.copy("app.orders")
    assert_failed_before_data_moved(w, result, "app.orders", "pg_sleep")


def test_check_calling_a_function_must_not_run_the_analysts_code_as_the_worker(world: World):
    """A source CHECK calling analytics.ok(id) (benign on the source) must not run the body a
    low-privileged analyst wrote under that name on the target as the worker: the table fails
    before any data moves, naming the function."""
    w = world
    w.plant_analyst_trap()
    w.attacker_db.execute("""
        CREATE TABLE app.orders (id int PRIMARY KEY, CONSTRAINT ok CHECK (analytics.ok(id)));
        INSERT INTO app.orders VALUES (1), (2);""")
    result = w.copy("app.orders")
    assert w.ran_as_worker() == [], "the analyst's function ran as the worker"
    assert_failed_before_data_moved(w, result, "app.orders", "analytics.ok")


def test_domain_check_with_notify_does_not_deliver_private_rows(world: World):
    """The same attack through a domain's CHECK (the domain is created on the target and checked
    for every loaded value): no private rows to the listening analyst, and the table fails
    before any data moves, naming the function."""
    w = world
    w.source.execute(f"""
        CREATE DOMAIN app.note_text AS text CHECK (CASE WHEN {_ON_TARGET} THEN true
            ELSE pg_catalog.pg_notify('exfil', {_PRIVATE_ROWS})::text = '' END);
        ALTER DOMAIN app.note_text OWNER TO "{w.attacker}";""")
    w.attacker_db.execute("""
        CREATE TABLE app.notes (id int PRIMARY KEY, note app.note_text);
        INSERT INTO app.notes VALUES (1, 'a');""")
    _assert_no_rows_reach_a_listening_analyst(w, "app.notes")


def test_generated_column_must_not_run_the_analysts_function_as_the_worker(world: World):
    """A generated column computed by analytics.norm(email) (the target computes generated
    columns) must not run the analyst's function of that name as the worker: the table fails
    before any data moves, naming the function."""
    w = world
    w.plant_analyst_trap()
    w.attacker_db.execute("""
        CREATE TABLE app.customers (id int PRIMARY KEY, email text,
            email_key text GENERATED ALWAYS AS (analytics.norm(email)) STORED);
        INSERT INTO app.customers (id, email) VALUES (1, 'A@x'), (2, 'B@x');""")
    result = w.copy("app.customers")
    assert w.ran_as_worker() == [], "the analyst's function ran as the worker"
    assert_failed_before_data_moved(w, result, "app.customers", "analytics.norm")


def test_index_expression_must_not_run_the_analysts_function_as_the_worker(world: World):
    """An index on analytics.norm(email) (built on the target after the load) must not run the
    analyst's function of that name as the worker: the table fails before any data moves,
    naming the function."""
    w = world
    w.plant_analyst_trap()
    w.attacker_db.execute("""
        CREATE TABLE app.customers (id int PRIMARY KEY, email text);
        CREATE INDEX customers_email_key ON app.customers (analytics.norm(email));
        INSERT INTO app.customers VALUES (1, 'A@x'), (2, 'B@x');""")
    result = w.copy("app.customers")
    assert w.ran_as_worker() == [], "the analyst's function ran as the worker"
    assert_failed_before_data_moved(w, result, "app.customers", "analytics.norm")


def test_partition_expression_must_not_run_the_analysts_function_as_the_worker(world: World):
    """A table partitioned by analytics.bucket(id) (the partition constraint is checked for
    every row loaded into a partition) must not run the analyst's function of that name as the
    worker: the table fails before any data moves, naming the function."""
    w = world
    w.plant_analyst_trap()
    w.attacker_db.execute("""
        CREATE TABLE app.events (id int, note text) PARTITION BY RANGE (analytics.bucket(id));
        CREATE TABLE app.events_low PARTITION OF app.events FOR VALUES FROM (0) TO (100);
        CREATE TABLE app.events_high PARTITION OF app.events FOR VALUES FROM (100) TO (1000);
        INSERT INTO app.events VALUES (1, 'a'), (150, 'b');""")
    result = w.copy("app.events")
    assert w.ran_as_worker() == [], "the analyst's function ran as the worker"
    assert_failed_before_data_moved(w, result, "app.events", "analytics.bucket")


def test_check_text_with_backslash_quote_does_not_break_out_on_a_target_without_standard_strings(
        world: World):
    """On a target database set to standard_conforming_strings = off, a source CHECK whose
    literal holds \\' must not end that literal early and run a second statement as the worker:
    the copy reads it as the source wrote it (the constraint is the source's, and the table the
    second statement creates does not exist)."""
    w = world
    dbname = w.target.scalar("SELECT current_database()")
    w.target.execute(f'ALTER DATABASE "{dbname}" SET standard_conforming_strings = off')
    # Read with standard strings (the source's setting) this is one literal; read without, the
    # backslash escapes the quote, the literal ends, and the rest is SQL ("--" eats the tail).
    second = ("))); CREATE TABLE app.broke_out AS SELECT current_user AS who, secret "
              "FROM private.salaries; --")
    w.attacker_db.execute("CREATE TABLE app.notes (id int PRIMARY KEY, note text, "
                          "CONSTRAINT note_ok CHECK (note <> %s))", ("\\'" + second,))
    w.attacker_db.execute("INSERT INTO app.notes VALUES (1, 'fine')")
    w.copy("app.notes")
    assert w.target.scalar("SELECT pg_catalog.to_regclass('app.broke_out')") is None, (
        "a second statement from the CHECK's text ran as the worker")
    source_def = w.source.scalar("SELECT pg_catalog.pg_get_constraintdef(oid) FROM "
                                 "pg_catalog.pg_constraint WHERE conname = 'note_ok'")
    target_conn = w.target.connect()
    try:
        with target_conn.cursor() as cur:
            cur.execute("SET standard_conforming_strings = on")
            cur.execute("SELECT pg_catalog.pg_get_constraintdef(oid) FROM "
                        "pg_catalog.pg_constraint WHERE conname = 'note_ok'")
            row = cur.fetchone()
    finally:
        target_conn.close()
    assert row is not None and row[0] == source_def


def test_definitions_of_built_in_immutable_functions_still_copy(world: World):
    """What the fix must keep working (holds today): CHECKs, generated columns and index
    expressions built from built-in immutable functions, a CHECK calling an extension's function
    (an extension is trusted by creating it on the target), and column defaults calling volatile
    built-ins (nextval, now, gen_random_uuid: COPY supplies every column, so defaults are not
    evaluated while loading)."""
    w = world
    for db in (w.source, w.target):
        db.execute("CREATE EXTENSION fuzzystrmatch SCHEMA public")
    w.attacker_db.execute("""
        CREATE TABLE app.customers (
            id bigserial PRIMARY KEY,
            uid uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
            created timestamptz NOT NULL DEFAULT pg_catalog.now(),
            email text NOT NULL CHECK (length(email) > 2 AND position('@' IN email) > 1),
            nick text CHECK (public.levenshtein(nick, email) >= 0),
            email_key text GENERATED ALWAYS AS (lower(email)) STORED);
        CREATE INDEX customers_lower_email ON app.customers (lower(email));
        INSERT INTO app.customers (email) VALUES ('A@x'), ('b@y');""")
    result = w.copy("app.customers")
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT email, email_key FROM app.customers ORDER BY id") == [
        ("A@x", "a@x"), ("b@y", "b@y")]
