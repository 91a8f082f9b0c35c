"""Issue 12, "Target-side code runs as the worker".

The promise: no target-side user code runs as the worker. Triggers on copied tables never fire
as the worker (nightcopy refuses the table, or loads it in a way that does not run them);
target-only indexes, constraints and views keep their owner's privileges, or the table fails
naming them.

Several scenes need the worker to be a member of the analyst's role: that is how an operator
lets the swap replace a table (or drop a view) that another role owns and give it back to it
("a replaced table keeps its owner when the worker may set it", README).
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors

from tests.security.conftest import SECRET, World

_TRIGGER_FUNCTION = """
CREATE FUNCTION analytics.on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM analytics.steal(); RETURN NEW; END $$;
"""


def _source_orders(w: World) -> None:
    w.attacker_db.execute("""
        CREATE TABLE app.orders (id int PRIMARY KEY, email text);
        INSERT INTO app.orders VALUES (1, 'a@x'), (2, 'b@x');""")


def _analyst_owns_target_orders(w: World, extra_sql: str) -> None:
    """The target's app.orders belongs to the analyst, who grants the worker what a truncate
    load needs (SELECT, INSERT, TRUNCATE)."""
    w.target.execute(f'GRANT CREATE ON SCHEMA app TO "{w.analyst}"')
    w.plant_analyst_trap()
    w.analyst_db.execute(f"""
        CREATE TABLE app.orders (id int PRIMARY KEY, email text);
        GRANT SELECT, INSERT, TRUNCATE ON app.orders TO "{w.worker}";
        {extra_sql}""")


def test_truncate_never_fires_an_analysts_trigger_as_the_worker(world: World):
    """With --strategy truncate, a row trigger the analyst put on its copied table must not fire
    as the worker during the load (refused, or loaded without firing it)."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(w, _TRIGGER_FUNCTION + """
        CREATE TRIGGER steal BEFORE INSERT ON app.orders
            FOR EACH ROW EXECUTE FUNCTION analytics.on_insert();""")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the analyst's trigger fired as the worker"
    assert SECRET not in str(w.loot())
    assert "Traceback" not in result.stderr


def test_swap_refuses_a_table_with_an_analysts_trigger(world: World):
    """With --strategy swap, a table carrying a target-side trigger fails naming the trigger,
    and the trigger never fires as the worker (holds today: triggers block the swap)."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(w, _TRIGGER_FUNCTION + """
        CREATE TRIGGER steal BEFORE INSERT ON app.orders
            FOR EACH ROW EXECUTE FUNCTION analytics.on_insert();""")
    w.target.execute(f'GRANT "{w.analyst}" TO "{w.worker}"')
    result = w.copy("app.orders")
    assert result.returncode == 1, result.stderr
    assert "trigger steal" in result.events_of("table_failed")[0]["error"]
    assert w.ran_as_worker() == []


def test_truncate_never_evaluates_an_analysts_index_expression_as_the_worker(world: World):
    """With --strategy truncate, an index the analyst built on its copied table over
    analytics.norm(email) must not run that function as the worker while the load maintains
    the index (the table fails naming the index, or the function runs as its owner)."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(
        w, "CREATE INDEX orders_norm_email ON app.orders (analytics.norm(email));")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the analyst's index expression ran as the worker"
    assert "Traceback" not in result.stderr


def test_truncate_never_evaluates_an_analysts_check_as_the_worker(world: World):
    """With --strategy truncate, a CHECK the analyst added to its copied table calling
    analytics.ok(id) must not run that function as the worker for every loaded row."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(
        w, "ALTER TABLE app.orders ADD CONSTRAINT ok CHECK (analytics.ok(id));")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the analyst's CHECK ran as the worker"
    assert "Traceback" not in result.stderr


def test_swap_never_rebuilds_a_target_only_index_expression_as_the_worker(world: World):
    """With --strategy swap, the target-only index over analytics.norm(email) that the swap
    carries over to the new table must not run the analyst's function as the worker (the
    staging table is the worker's, and index builds run as the table's owner): the table fails
    naming the index, or the index is built with its owner's privileges."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(
        w, "CREATE INDEX orders_norm_email ON app.orders (analytics.norm(email));")
    w.target.execute(f'GRANT "{w.analyst}" TO "{w.worker}"')
    result = w.copy("app.orders")
    assert w.ran_as_worker() == [], "the target-only index expression ran as the worker"
    if result.returncode != 0:
        assert "orders_norm_email" in result.events_of("table_failed")[0]["error"]


def test_recreated_view_never_keeps_the_workers_privileges(world: World):
    """A view the analyst owns on a copied table, re-created by the swap, whose owner cannot be
    set back (the analyst has since lost CREATE on the view's schema, where the worker may
    create), must not stay owned by the worker
    with its grants re-applied: its readers would read with the worker's privileges. The table
    fails naming the view, or the view keeps its owner."""
    w = world
    _source_orders(w)
    first = w.copy("app.orders")
    assert first.returncode == 0, first.stderr
    w.plant_analyst_trap()
    w.target.execute(f"""
        CREATE SCHEMA dash;
        GRANT USAGE, CREATE ON SCHEMA dash TO "{w.analyst}", "{w.worker}";""")
    # The view reads the private table with its owner's privileges: the analyst's own fail.
    w.analyst_db.execute("""
        CREATE VIEW dash.order_stats AS
            SELECT o.id, (SELECT string_agg(s.secret, ',') FROM private.salaries s) AS extra
              FROM app.orders o;
        GRANT SELECT ON dash.order_stats TO PUBLIC;""")
    w.target.execute(f"""
        REVOKE CREATE ON SCHEMA dash FROM "{w.analyst}";
        GRANT "{w.analyst}" TO "{w.worker}";
        GRANT SELECT ON app.orders TO "{w.analyst}";""")
    w.copy("app.orders")
    try:
        seen = str(w.analyst_db.query("SELECT extra FROM dash.order_stats"))
    except psycopg2.errors.InsufficientPrivilege:
        seen = ""
    assert SECRET not in seen, "the analyst read the private table through the view"
    owner = w.target.scalar("SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class "
                            "WHERE oid = 'dash.order_stats'::regclass")
    assert owner != w.worker, "the re-created view is owned by the worker"


def test_swap_never_rebuilds_a_target_only_partial_index_predicate_as_the_worker(world: World):
    """The sibling of the index-expression case: a target-only partial index whose predicate
    calls analytics.ok(id) is not rebuilt on the worker's staged table; the table fails naming
    the index, and nothing ran as the worker."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(
        w, "CREATE INDEX orders_ok_ids ON app.orders (id) WHERE analytics.ok(id);")
    w.target.execute(f'GRANT "{w.analyst}" TO "{w.worker}"')
    result = w.copy("app.orders")
    assert w.ran_as_worker() == [], "the target-only index predicate ran as the worker"
    assert result.returncode == 1, result.stderr
    assert "orders_ok_ids" in result.events_of("table_failed")[0]["error"]


def test_truncate_refuses_naming_the_trigger_and_the_function_before_loading(world: World):
    """The refusal the truncate tests accept is one clear line naming the objects, with the
    table's rows untouched (nothing was truncated)."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(w, _TRIGGER_FUNCTION + """
        INSERT INTO app.orders VALUES (7, 'kept@x');
        -- NOT VALID: the existing row is not checked (analytics.ok would run as the analyst).
        ALTER TABLE app.orders ADD CONSTRAINT ok CHECK (analytics.ok(id)) NOT VALID;
        CREATE TRIGGER steal BEFORE INSERT ON app.orders
            FOR EACH ROW EXECUTE FUNCTION analytics.on_insert();""")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert result.returncode == 1, result.stderr
    error = result.events_of("table_failed")[0]["error"]
    assert "trigger steal" in error and "check constraint ok calls analytics.ok" in error, error
    assert w.target.query("SELECT id FROM app.orders") == [(7,)]
    assert w.ran_as_worker() == []
    assert "Traceback" not in result.stderr


def test_truncate_still_loads_a_table_whose_code_is_built_in_or_an_extensions(world: World):
    """What the refusal must keep working: CHECKs and index expressions calling only pg_catalog
    functions or an extension's (an extension is trusted by creating it), and the internal
    triggers of the table's foreign key, do not stop a truncate load."""
    w = world
    w.target.execute("CREATE EXTENSION fuzzystrmatch SCHEMA public")
    _source_orders(w)
    _analyst_owns_target_orders(w, """
        ALTER TABLE app.orders ADD CONSTRAINT near CHECK (public.levenshtein(email, 'x') >= 0);
        CREATE INDEX orders_lower_email ON app.orders (lower(email));
        CREATE TABLE app.known_ids (id int PRIMARY KEY);
        INSERT INTO app.known_ids VALUES (1), (2);
        ALTER TABLE app.orders ADD CONSTRAINT known FOREIGN KEY (id) REFERENCES app.known_ids;""")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT id FROM app.orders ORDER BY 1") == [(1,), (2,)]


def test_truncate_never_evaluates_an_analysts_generated_column_as_the_worker(world: World):
    """The sibling of the CHECK case: a generated column the analyst added to its copied table
    over analytics.bucket(id) is computed for every loaded row, so the table is refused naming
    the column and the function."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(w, """
        ALTER TABLE app.orders ADD COLUMN b int GENERATED ALWAYS AS (analytics.bucket(id)) STORED;""")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the analyst's generated column ran as the worker"
    assert result.returncode == 1, result.stderr
    assert "generated column b calls analytics.bucket(integer)" in (
        result.events_of("table_failed")[0]["error"])


def test_truncate_never_evaluates_a_domain_check_calling_an_analysts_function(world: World):
    """The domain sibling: a column's domain on the target carries a CHECK calling the analyst's
    analytics.ok(); loading the column would evaluate it as the worker, so the table is
    refused naming the domain's constraint."""
    w = world
    w.attacker_db.execute("""
        CREATE DOMAIN app.order_id AS int CHECK (VALUE > 0);
        CREATE TABLE app.orders (id app.order_id PRIMARY KEY, email text);
        INSERT INTO app.orders VALUES (1, 'a@x');""")
    assert w.copy("app.orders").returncode == 0
    w.plant_analyst_trap()
    w.target.execute("ALTER DOMAIN app.order_id ADD CONSTRAINT via_ok "
                     "CHECK (analytics.ok(VALUE)) NOT VALID")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the domain's CHECK ran the analyst's function as the worker"
    assert result.returncode == 1, result.stderr
    assert "domain check via_ok on app.order_id calls analytics.ok(integer)" in (
        result.events_of("table_failed")[0]["error"])
