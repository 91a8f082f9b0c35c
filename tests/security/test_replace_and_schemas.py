"""Issue 12, "A glob destroys target tables it never created" and "Schemas taken on trust".

The promises: through a glob, a target table is replaced only when nightcopy created it (a
table it never created is refused with a clear error; naming it explicitly, or --adopt,
replaces it and records it as nightcopy's); and
nightcopy's own schemas (the ledger `nightcopy`, the staging `nightcopy_stage_<schema>`) are
refused when another role owns them.
"""

from __future__ import annotations

import re

from tests.security.conftest import World


def _budget_scene(w: World) -> None:
    """app.orders copied by an earlier glob night; then a target-only app.budget (reporting
    data the worker's team keeps there), then the attacker's new source table of that name."""
    w.attacker_db.execute("""
        CREATE TABLE app.orders (id int PRIMARY KEY);
        INSERT INTO app.orders VALUES (1);""")
    first = w.copy("app.*")
    assert first.returncode == 0, first.stderr
    w.as_worker_on_target().execute("""
        CREATE TABLE app.budget (line text);
        INSERT INTO app.budget VALUES ('reporting plan 2027');""")
    w.attacker_db.execute("""
        CREATE TABLE app.budget (junk int);
        INSERT INTO app.budget VALUES (0);""")


def _managed(w: World) -> list[tuple[str, bool]]:
    """The ledger's record of nightcopy's tables: (name, whether the oid is the table's now)."""
    return w.target.query("""
        SELECT m.table_name, m.table_oid = pg_catalog.to_regclass(m.table_name)::oid
          FROM nightcopy.managed_tables m ORDER BY 1""")


def test_glob_never_replaces_a_target_table_nightcopy_did_not_create(world: World):
    """`app.*` must not replace the target-only app.budget because the source grew a table of
    that name: it is refused with a clear error naming it, and keeps its rows."""
    w = world
    _budget_scene(w)
    result = w.copy("app.*")
    assert w.target.query("SELECT * FROM app.budget") == [("reporting plan 2027",)], (
        "the glob replaced a target table nightcopy never created")
    assert result.returncode == 1, result.stderr
    [failed] = result.events_of("table_failed")
    assert failed["table"] == "app.budget"
    # One line: the table, why, and both fixes.
    assert "app.budget" in result.stderr and "'app.*'" in failed["error"], result.stderr
    assert "did not create it" in failed["error"]
    assert "name it explicitly" in failed["error"] and "--adopt" in failed["error"]
    assert [e["table"] for e in result.events_of("table_copied")] == ["app.orders"]
    assert "Traceback" not in result.stderr


def test_naming_a_table_explicitly_replaces_it_and_records_it(world: World):
    """A table named explicitly in the list is replaced even when nightcopy did not create it;
    from then on it is nightcopy's, so the glob replaces it too."""
    w = world
    _budget_scene(w)
    result = w.copy("app.orders, app.budget")
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT * FROM app.budget") == [(0,)]
    assert _managed(w) == [("app.budget", True), ("app.orders", True)]
    w.attacker_db.execute("INSERT INTO app.budget VALUES (1)")
    again = w.copy("app.*")
    assert again.returncode == 0, again.stderr
    assert w.target.query("SELECT * FROM app.budget ORDER BY 1") == [(0,), (1,)]


def test_adopt_lets_a_glob_replace_an_existing_table_and_records_it(world: World):
    """--adopt (teams moving from another tool): the glob replaces the unrecorded table and
    records it; the next night needs no --adopt for it."""
    w = world
    _budget_scene(w)
    result = w.copy("app.*", "--adopt")
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT * FROM app.budget") == [(0,)]
    assert _managed(w) == [("app.budget", True), ("app.orders", True)]
    assert w.copy("app.*").returncode == 0


def test_adopt_from_the_environment(world: World):
    w = world
    _budget_scene(w)
    result = w.copy("app.*", env={"NIGHTCOPY_ADOPT": "true"})
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT * FROM app.budget") == [(0,)]


def test_truncate_through_a_glob_never_empties_a_table_nightcopy_did_not_create(world: World):
    """--strategy truncate empties the table in place: the same rule. The worker owns the
    target-only table here, so nothing else would stop the truncate."""
    w = world
    w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                          "INSERT INTO app.orders VALUES (1);")
    assert w.copy("app.*").returncode == 0
    w.as_worker_on_target().execute("CREATE TABLE app.budget (line text); "
                                    "INSERT INTO app.budget VALUES ('reporting plan 2027');")
    w.attacker_db.execute("CREATE TABLE app.budget (line text); "
                          "INSERT INTO app.budget VALUES ('junk');")
    result = w.copy("app.*", "--strategy", "truncate")
    assert result.returncode == 1, result.stderr
    assert w.target.query("SELECT * FROM app.budget") == [("reporting plan 2027",)]
    assert [e["table"] for e in result.events_of("table_failed")] == ["app.budget"]
    assert [e["table"] for e in result.events_of("table_copied")] == ["app.orders"]
    # Named explicitly: truncated, loaded and recorded (same oid: truncate keeps the table).
    oid = w.target.scalar("SELECT 'app.budget'::regclass::oid")
    named = w.copy("app.budget", "--strategy", "truncate")
    assert named.returncode == 0, named.stderr
    assert w.target.query("SELECT * FROM app.budget") == [("junk",)]
    assert w.target.scalar("SELECT table_oid FROM nightcopy.managed_tables "
                           "WHERE table_name = 'app.budget'") == oid


def _plant_ledger_trigger(w: World) -> None:
    """The analyst, owning schema `nightcopy`, drops the worker's table_results there (a schema
    owner may drop what is in it) and puts its own of the same shape, with a trigger, in its
    place. The shape is read from the catalog, as the analyst could."""
    columns = w.analyst_db.query("""
        SELECT pg_catalog.format('%I %s%s%s', a.attname,
                   pg_catalog.format_type(a.atttypid, a.atttypmod),
                   CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                   ' DEFAULT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid))
          FROM pg_catalog.pg_attribute a
          LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = 'nightcopy.table_results'::regclass AND a.attnum > 0
           AND NOT a.attisdropped ORDER BY a.attnum""")
    keys = w.analyst_db.query("""
        SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint
         WHERE conrelid = 'nightcopy.table_results'::regclass AND contype IN ('p', 'u')""")
    w.analyst_db.execute(f"""
        DROP TABLE nightcopy.table_results;
        CREATE TABLE nightcopy.table_results ({', '.join([c[0] for c in columns]
                                                         + [k[0] for k in keys])});
        GRANT ALL ON nightcopy.table_results TO PUBLIC;
        CREATE FUNCTION analytics.on_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM analytics.steal(); RETURN NEW; END $$;
        CREATE TRIGGER steal BEFORE INSERT OR UPDATE ON nightcopy.table_results
            FOR EACH ROW EXECUTE FUNCTION analytics.on_ledger();""")


def test_ledger_schema_created_first_by_another_role_is_refused(world: World):
    """A `nightcopy` schema the analyst created before the first run (and opened to everyone)
    must be refused, naming the schema and who owns it: otherwise its owner can swap the ledger
    for a table with a trigger that fires as the worker on every table result."""
    w = world
    w.target.execute(f'GRANT CREATE ON DATABASE "{w.target_dbname}" TO "{w.analyst}"')
    w.plant_analyst_trap()
    w.analyst_db.execute("CREATE SCHEMA nightcopy; "
                         "GRANT USAGE, CREATE ON SCHEMA nightcopy TO PUBLIC;")
    w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                          "INSERT INTO app.orders VALUES (1);")
    w.copy("app.orders")
    if w.target.scalar("SELECT pg_catalog.to_regclass('nightcopy.table_results')") is not None:
        _plant_ledger_trigger(w)
    result = w.copy("app.orders")
    assert w.ran_as_worker() == [], "the analyst's trigger on the ledger fired as the worker"
    assert result.returncode == 1, result.stderr
    # Names the schema (beyond the "nightcopy:" prefix of every line) and its ownership.
    assert re.search(r"nightcopy\b(?![:_])", result.stderr), result.stderr
    assert "own" in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr


def test_staging_schema_created_first_by_another_role_is_refused(world: World):
    """A `nightcopy_stage_app` schema the analyst created first (and opened to everyone) must
    be refused, naming the schema and who owns it, before any table is built in it: its owner
    may drop or plant objects among what the worker builds there."""
    w = world
    w.target.execute(f'GRANT CREATE ON DATABASE "{w.target_dbname}" TO "{w.analyst}"')
    w.analyst_db.execute("CREATE SCHEMA nightcopy_stage_app; "
                         "GRANT USAGE, CREATE ON SCHEMA nightcopy_stage_app TO PUBLIC;")
    w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                          "INSERT INTO app.orders VALUES (1);")
    result = w.copy("app.orders")
    assert result.returncode == 1, f"exit {result.returncode}: the schema was used {result.stderr}"
    assert "nightcopy_stage_app" in result.stderr, result.stderr
    assert "own" in result.stderr.lower(), result.stderr
    assert w.target.scalar("SELECT pg_catalog.to_regclass('app.orders')") is None
    assert "Traceback" not in result.stderr


def test_ledger_holding_another_roles_table_is_refused(world: World):
    """The sibling of the schema case: the ledger schema is the worker's, but another role
    (given CREATE there) put a table in it; the run is refused naming that table and its
    owner, before anything is written to the ledger."""
    w = world
    w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                          "INSERT INTO app.orders VALUES (1);")
    assert w.copy("app.orders").returncode == 0
    w.as_worker_on_target().execute(f'GRANT USAGE, CREATE ON SCHEMA nightcopy TO "{w.analyst}"')
    w.analyst_db.execute("CREATE TABLE nightcopy.planted (x int)")
    runs_before = w.target.scalar("SELECT count(*) FROM nightcopy.invocations")
    result = w.copy("app.orders")
    assert result.returncode == 1, result.stderr
    assert "nightcopy.planted" in result.stderr and w.analyst in result.stderr, result.stderr
    assert w.target.scalar("SELECT count(*) FROM nightcopy.invocations") == runs_before
    assert "Traceback" not in result.stderr


def test_ledger_of_a_role_the_worker_is_a_member_of_is_used(world: World):
    """What the refusal must keep working: a ledger created by a previous release under an
    admin role the worker is a member of (by GRANT) is used as it is."""
    w = world
    w.target.execute(f"""
        CREATE ROLE "{w.analyst}_admin" NOLOGIN;
        GRANT CREATE ON DATABASE "{w.target_dbname}" TO "{w.analyst}_admin";
        GRANT "{w.analyst}_admin" TO "{w.worker}";""")
    try:
        w.target.execute(f'SET ROLE "{w.analyst}_admin"; CREATE SCHEMA nightcopy; RESET ROLE;')
        w.attacker_db.execute("CREATE TABLE app.orders (id int PRIMARY KEY); "
                              "INSERT INTO app.orders VALUES (1);")
        result = w.copy("app.orders")
        assert result.returncode == 0, result.stderr
        assert w.target.query("SELECT status FROM nightcopy.table_results") == [("copied",)]
    finally:
        w.target.execute(f'DROP SCHEMA IF EXISTS nightcopy CASCADE; '
                         f'REVOKE CREATE ON DATABASE "{w.target_dbname}" FROM "{w.analyst}_admin"; '
                         f'DROP ROLE "{w.analyst}_admin"')
