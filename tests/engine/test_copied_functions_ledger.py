"""The ledger records the functions nightcopy copies under --trust (nightcopy.copied_functions,
ledger version 4): a later night refreshes exactly those, and a function that only looks like
one (the worker's, with nightcopy's comment) is not taken for one."""

from __future__ import annotations

import psycopg2

from nightcopy.engine.copied_functions import COPIED_MARK
from nightcopy.engine.ledger import LEDGER_VERSION, ensure_ledger
from tests.engine.test_target_lacks import copy_as_worker, worker  # noqa: F401 - fixtures

SOURCE = """
    CREATE SCHEMA app;
    CREATE FUNCTION app.ok(i int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i < 1000';
    CREATE TABLE app.t (id int CHECK (app.ok(id)));
    INSERT INTO app.t VALUES (1), (2);"""


def test_a_copied_function_is_recorded_in_the_ledger_and_refreshed_by_a_later_night(
        copy_as_worker, dbs, worker):  # noqa: F811
    dbs.source.execute(SOURCE)
    result = copy_as_worker("app.t", "--trust", "app.*")
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = ("SELECT signature, function_oid = to_regprocedure(signature)::oid, run_id "
                "FROM nightcopy.copied_functions")
    [(signature, same_oid, first_run)] = worker.query(recorded)
    assert (signature, same_oid) == ("app.ok(integer)", True)
    dbs.source.execute("CREATE OR REPLACE FUNCTION app.ok(i int) RETURNS boolean LANGUAGE sql "
                       "IMMUTABLE AS 'SELECT i < 2000'")
    result = copy_as_worker("app.t", "--trust", "app.*")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2000" in worker.scalar("SELECT prosrc FROM pg_proc WHERE oid = "
                                   "'app.ok(integer)'::regprocedure")
    [(_, same_oid, second_run)] = worker.query(recorded)
    assert same_oid and second_run != first_run


def test_a_function_with_nightcopys_comment_but_not_in_the_ledger_is_not_replaced(
        copy_as_worker, dbs, worker):  # noqa: F811
    dbs.source.execute(SOURCE)
    # The worker's own function, commented as nightcopy comments its copies: without the
    # ledger's row it is a function nightcopy did not create, used only if trusted by name.
    worker.execute("CREATE SCHEMA app; CREATE FUNCTION app.ok(i int) RETURNS boolean "
                   "LANGUAGE sql IMMUTABLE AS 'SELECT true'")
    worker.execute("COMMENT ON FUNCTION app.ok(integer) IS %s", (COPIED_MARK,))
    result = copy_as_worker("app.t", "--trust", "app.*")
    assert result.returncode == 1
    [failed] = result.events_of("table_failed")
    assert "exists on the target but was not created by nightcopy" in failed["error"]
    assert worker.scalar("SELECT prosrc FROM pg_proc WHERE oid = "
                         "'app.ok(integer)'::regprocedure") == "SELECT true"


def test_a_version_3_ledger_is_upgraded_with_the_functions_its_comments_recorded(dbs):
    # Version 3 is version 4 without nightcopy.copied_functions and table_definitions (and
    # the results' table index); its record of a copied function was the function itself:
    # the worker's, with nightcopy's comment.
    conn = psycopg2.connect(dbs.target.dsn)
    try:
        ensure_ledger(conn)
        with conn.cursor() as cur:
            cur.execute("DROP TABLE nightcopy.copied_functions, nightcopy.table_definitions;"
                        "DROP INDEX nightcopy.table_results_table_idx;"
                        "UPDATE nightcopy.meta SET value = '3' WHERE key = 'schema_version';"
                        "CREATE FUNCTION public.copied(i int) RETURNS int LANGUAGE sql "
                        "AS 'SELECT i';"
                        "CREATE FUNCTION public.own(i int) RETURNS int LANGUAGE sql "
                        "AS 'SELECT i';")
            cur.execute("COMMENT ON FUNCTION public.copied(integer) IS %s", (COPIED_MARK,))
        conn.commit()
        ensure_ledger(conn)
    finally:
        conn.close()
    assert dbs.target.scalar("SELECT value FROM nightcopy.meta WHERE key = 'schema_version'") \
        == str(LEDGER_VERSION)
    assert dbs.target.query("SELECT signature, function_oid = to_regprocedure(signature)::oid "
                            "FROM nightcopy.copied_functions") == [("public.copied(integer)",
                                                                    True)]
