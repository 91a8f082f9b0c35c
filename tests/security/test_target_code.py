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
import pytest

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


@pytest.mark.parametrize("analyst_code", [
    "CREATE INDEX orders_norm_email ON app.orders (analytics.norm(email));",
    "ALTER TABLE app.orders ADD CONSTRAINT ok CHECK (analytics.ok(id));",
], ids=["index-expression", "check"])
def test_truncate_never_evaluates_an_analysts_code_as_the_worker(world: World, analyst_code):
    """With --strategy truncate, an index the analyst built on its copied table over
    analytics.norm(email), or a CHECK it added calling analytics.ok(id), must not run that
    function as the worker for every loaded row (the table fails naming the object, or the
    function runs as its owner)."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(w, analyst_code)
    result = w.copy("app.orders", "--strategy", "truncate")
    assert w.ran_as_worker() == [], "the analyst's code ran as the worker"
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
    # Refused up front, by the check of the target's domains (before the truncate's own).
    error = result.events_of("table_failed")[0]["error"]
    assert "domain app.order_id" in error and "via_ok" in error, error
    assert "analytics.ok(integer)" in error, error


def test_truncate_honours_trust_for_target_side_code(world: World):
    """--trust applies to target-side code as to the source's expressions: an index over a
    function the user trusts no longer refuses a truncate load; trusting another function
    does not let it through."""
    w = world
    _source_orders(w)
    _analyst_owns_target_orders(
        w, "CREATE INDEX orders_norm_email ON app.orders (analytics.norm(email));")
    other = w.copy("app.orders", "--strategy", "truncate", "--trust", "analytics.ok")
    assert other.returncode == 1, other.stderr
    assert "orders_norm_email calls analytics.norm(text)" in (
        other.events_of("table_failed")[0]["error"])
    assert w.ran_as_worker() == []
    trusted = w.copy("app.orders", "--strategy", "truncate", "--trust", "analytics.norm")
    assert trusted.returncode == 0, trusted.stderr
    assert w.target.query("SELECT id FROM app.orders ORDER BY 1") == [(1,), (2,)]
    schema_wide = w.copy("app.orders", "--strategy", "truncate",
                         env={"NIGHTCOPY_TRUST": "analytics.*"})
    assert schema_wide.returncode == 0, schema_wide.stderr


def test_truncate_still_runs_the_workers_own_functions(world: World):
    """What trust must keep (documented): a function the worker's own role owns is its own
    code, and an index over it does not refuse a truncate load, without --trust."""
    w = world
    _source_orders(w)
    worker = w.as_worker_on_target()
    worker.execute("""
        CREATE FUNCTION app.lower_email(t text) RETURNS text LANGUAGE sql IMMUTABLE
            AS $$ SELECT pg_catalog.lower(t) $$;
        CREATE TABLE app.orders (id int PRIMARY KEY, email text);
        CREATE INDEX orders_lower_email ON app.orders (app.lower_email(email));""")
    result = w.copy("app.orders", "--strategy", "truncate")
    assert result.returncode == 0, result.stderr
    assert w.target.query("SELECT id FROM app.orders ORDER BY 1") == [(1,), (2,)]


def _positive_amounts(w: World) -> None:
    """The source's app.orders has a column of domain app.positive (a built-in CHECK); the
    target already has a domain of that name, which the swap uses as it stands."""
    w.attacker_db.execute("""
        CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
        CREATE TABLE app.orders (id int PRIMARY KEY, amount app.positive);
        INSERT INTO app.orders VALUES (1, 10), (2, 20);""")


def test_swap_never_evaluates_an_existing_target_domains_analyst_check_as_the_worker(
        world: World):
    """The target has domain app.positive already, with a CHECK calling the analyst's
    analytics.ok(): loading the staged table's column of that domain would evaluate it as the
    worker. The table fails before any data moves, naming the domain and the function."""
    w = world
    w.target.execute(f'GRANT CREATE ON SCHEMA app TO "{w.analyst}"')
    w.plant_analyst_trap()
    w.analyst_db.execute("CREATE DOMAIN app.positive AS int CHECK (analytics.ok(VALUE))")
    _positive_amounts(w)
    result = w.copy("app.orders")
    assert w.ran_as_worker() == [], "the target domain's CHECK ran the analyst's code as the worker"
    assert SECRET not in str(w.loot())
    assert result.returncode == 1, result.stderr
    error = result.events_of("table_failed")[0]["error"]
    assert "app.positive" in error and "analytics.ok(integer)" in error, error
    assert "--trust" in error and "Traceback" not in result.stderr
    assert w.target.scalar("SELECT to_regclass('app.orders')") is None  # nothing loaded
    assert w.target.scalar("SELECT to_regclass('nightcopy_stage_app.orders')") is None


def test_an_existing_target_domain_calling_a_volatile_built_in_is_refused(world: World):
    """The built-in sibling: pg_sleep() (volatile; pg_depend records no dependency on it) in the
    target domain's CHECK stalls every row: refused as the source's would be."""
    w = world
    w.target.execute("CREATE DOMAIN app.positive AS int "
                     "CHECK (pg_catalog.pg_sleep(0.5) IS NOT NULL AND VALUE > 0)")
    _positive_amounts(w)
    result = w.copy("app.orders", timeout=60)
    assert result.returncode == 1, result.stderr
    error = result.events_of("table_failed")[0]["error"]
    assert "app.positive" in error and "pg_catalog.pg_sleep(double precision)" in error, error


def test_an_existing_target_domain_nested_in_an_array_is_checked(world: World):
    w = world
    w.target.execute(f'GRANT CREATE ON SCHEMA app TO "{w.analyst}"')
    w.plant_analyst_trap()
    w.analyst_db.execute("CREATE DOMAIN app.positive AS int CHECK (analytics.ok(VALUE))")
    w.attacker_db.execute("""
        CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
        CREATE TABLE app.orders (id int PRIMARY KEY, amounts app.positive[]);
        INSERT INTO app.orders VALUES (1, '{10,20}');""")
    result = w.copy("app.orders")
    assert w.ran_as_worker() == []
    assert result.returncode == 1, result.stderr
    assert "app.positive" in result.events_of("table_failed")[0]["error"]


def test_an_existing_target_domain_with_a_trusted_or_built_in_check_still_loads(world: World):
    """What the check must keep: a target domain whose CHECK is built-in immutable loads as
    before, and one calling a function the user trusts loads with --trust."""
    w = world
    w.target.execute("CREATE DOMAIN app.positive AS int CHECK (VALUE > 0)")
    _positive_amounts(w)
    result = w.copy("app.orders")
    assert result.returncode == 0, result.stderr
    w.target.execute("""
        CREATE FUNCTION analytics.is_positive(n int) RETURNS boolean LANGUAGE sql IMMUTABLE
            AS $$ SELECT n > 0 $$;
        GRANT USAGE ON SCHEMA analytics TO PUBLIC;
        ALTER DOMAIN app.positive ADD CONSTRAINT via_fn CHECK (analytics.is_positive(VALUE));""")
    refused = w.copy("app.orders")
    assert refused.returncode == 1, refused.stderr
    assert "via_fn" in refused.events_of("table_failed")[0]["error"]
    trusted = w.copy("app.orders", "--trust", "analytics.is_positive")
    assert trusted.returncode == 0, trusted.stderr
    assert w.target.query("SELECT id, amount FROM app.orders ORDER BY 1") == [(1, 10), (2, 20)]


def test_an_existing_target_domain_inside_a_type_nightcopy_creates_is_checked(world: World):
    """The composite app.money is new to the target (nightcopy creates it from the source), but
    its attribute's domain app.positive is the analyst's: checked again in the table's own
    transaction, once every type exists, before the load."""
    w = world
    w.target.execute(f'GRANT CREATE ON SCHEMA app TO "{w.analyst}"')
    w.plant_analyst_trap()
    w.analyst_db.execute("CREATE DOMAIN app.positive AS int CHECK (analytics.ok(VALUE))")
    w.attacker_db.execute("""
        CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
        CREATE TYPE app.money AS (amount app.positive, currency text);
        CREATE TABLE app.orders (id int PRIMARY KEY, total app.money);
        INSERT INTO app.orders VALUES (1, ROW(10, 'EUR'));""")
    result = w.copy("app.orders")
    assert w.ran_as_worker() == []
    assert result.returncode == 1, result.stderr
    error = result.events_of("table_failed")[0]["error"]
    assert "app.positive" in error and "analytics.ok(integer)" in error, error
    assert w.target.scalar("SELECT to_regclass('app.orders')") is None
