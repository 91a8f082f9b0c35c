"""Plain inheritance hierarchies (INHERITS, not partitioning; issue 13): a parent copied with
its children is reproduced as a hierarchy, in one transaction, each table with its own rows."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from tests.conftest import Db
from tests.engine.test_cross_version import pg15  # noqa: F401 - the PostgreSQL 15 fixture

# Deep (vehicles > cars > sports_cars), multiple inheritance (amphibians of cars and boats),
# a column both inherited and local (cars.wheels), a child's own default and NOT NULL on an
# inherited column, inherited, local and NO INHERIT checks, a check both local and inherited,
# an index and a primary key of a child's own, a column redeclared by a child whose NOT NULL
# comes from the parent only (trucks.id: the not-null constraint stays inherited, not local).
HIERARCHY = """
CREATE TABLE public.vehicles (id int NOT NULL, name text DEFAULT 'unnamed', wheels int,
    CONSTRAINT id_positive CHECK (id > 0),
    CONSTRAINT parent_only CHECK (name <> 'nobody') NO INHERIT);
CREATE TABLE public.boats (hull text DEFAULT 'wood', CONSTRAINT hull_known CHECK (hull <> ''));
CREATE TABLE public.cars (wheels int DEFAULT 4, doors int NOT NULL DEFAULT 4,
    CONSTRAINT id_positive CHECK (id > 0), CONSTRAINT few_doors CHECK (doors < 10))
    INHERITS (public.vehicles);
ALTER TABLE public.cars ALTER COLUMN name SET DEFAULT 'car';
ALTER TABLE public.cars ALTER COLUMN wheels SET NOT NULL;
ALTER TABLE public.cars ADD PRIMARY KEY (id);
CREATE TABLE public.sports_cars (top_speed int) INHERITS (public.cars);
CREATE INDEX sports_cars_speed ON public.sports_cars (top_speed);
CREATE TABLE public.amphibians (depth int) INHERITS (public.cars, public.boats);
CREATE TABLE public.trucks (id int, load int) INHERITS (public.vehicles);
INSERT INTO public.vehicles (id, name) VALUES (1, 'cart'), (2, 'sled');
INSERT INTO public.boats VALUES ('steel');
INSERT INTO public.cars (id, name, wheels) VALUES (10, 'mini', 4), (11, 'van', 4), (12, 'bus', 6);
INSERT INTO public.sports_cars (id, wheels, top_speed) VALUES (20, 4, 300);
INSERT INTO public.amphibians (id, wheels, hull, depth) VALUES (30, 4, 'steel', 2);
INSERT INTO public.trucks (id, load) VALUES (40, 9);
"""
TABLES = ["public.vehicles", "public.boats", "public.cars", "public.sports_cars",
          "public.amphibians", "public.trucks"]
OWN_ROWS = {"public.vehicles": 2, "public.boats": 1, "public.cars": 3, "public.sports_cars": 1,
            "public.amphibians": 1, "public.trucks": 1}

# The definition as the catalog has it: parents in order, columns with attislocal and
# attinhcount, constraints with conislocal, coninhcount and connoinherit, the indexes.
CATALOG = """
SELECT 'inherits', c.relname, ARRAY(
         SELECT p.relname || ':' || i.inhseqno FROM pg_inherits i
           JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid ORDER BY i.inhseqno)::text
  FROM pg_class c WHERE c.relname = ANY(%(names)s)
UNION ALL
SELECT 'column', c.relname, concat_ws(' ', a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, a.attislocal, a.attinhcount, pg_get_expr(d.adbin, d.adrelid))
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relname = ANY(%(names)s)
UNION ALL
SELECT 'constraint', c.relname, concat_ws(' ', k.conname, k.contype, pg_get_constraintdef(k.oid),
       k.conislocal, k.coninhcount, k.connoinherit)
  FROM pg_class c JOIN pg_constraint k ON k.conrelid = c.oid WHERE c.relname = ANY(%(names)s)
UNION ALL
SELECT 'index', c.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid WHERE c.relname = ANY(%(names)s)
ORDER BY 1, 2, 3
"""


def catalog(db, tables: list[str]) -> list[tuple]:
    return db.query(CATALOG, {"names": [t.split(".")[1] for t in tables]})


def own_rows(db, tables: list[str]) -> dict[str, list[tuple]]:
    return {t: db.query(f"SELECT * FROM ONLY {t} ORDER BY 1") for t in tables}


def assert_same_hierarchy(dbs, tables: list[str]) -> None:
    assert catalog(dbs.target, tables) == catalog(dbs.source, tables)
    assert own_rows(dbs.target, tables) == own_rows(dbs.source, tables)
    for t in tables:  # with the children's rows, as readers of the parent see them
        assert dbs.target.query(f"SELECT count(*) FROM {t}") == \
            dbs.source.query(f"SELECT count(*) FROM {t}"), t


def test_hierarchy_is_copied_with_its_definition_and_each_tables_own_rows(copy, dbs):
    dbs.source.execute(HIERARCHY)
    result = copy("public.*", "--verify", "checksum")
    assert result.returncode == 0, result.stderr
    assert_same_hierarchy(dbs, TABLES)
    # Each table of the hierarchy reports its own rows (not its children's).
    assert {e["table"]: e["rows"] for e in result.events_of("table_copied")} == OWN_ROWS
    assert not [e for e in result.events_of("warning") if "inherit" in e["message"]]
    # A child keeps its own default and NOT NULL; NO INHERIT stays on the parent alone.
    assert dbs.target.scalar("INSERT INTO public.cars (id) VALUES (99) RETURNING name") == "car"
    with pytest.raises(psycopg2.errors.NotNullViolation):
        dbs.target.execute("INSERT INTO public.cars (id, wheels) VALUES (98, NULL)")
    dbs.target.execute("INSERT INTO public.cars (id, name, wheels) VALUES (97, 'nobody', 4)")


def test_multiple_inheritance_joins_both_parents_in_one_unit(copy, dbs):
    dbs.source.execute("""
        CREATE TABLE public.people (name text);
        CREATE TABLE public.workers (salary int);
        CREATE TABLE public.working_students (school text) INHERITS (public.people, public.workers);
        INSERT INTO public.people VALUES ('ann');
        INSERT INTO public.workers VALUES (10);
        INSERT INTO public.working_students VALUES ('bob', 20, 'mit')""")
    tables = ["public.people", "public.workers", "public.working_students"]
    result = copy(",".join(tables))
    assert result.returncode == 0, result.stderr
    assert_same_hierarchy(dbs, tables)
    assert dbs.target.query("SELECT p.relname FROM pg_inherits i JOIN pg_class p ON "
                            "p.oid = i.inhparent WHERE i.inhrelid = "
                            "'public.working_students'::regclass ORDER BY i.inhseqno") == \
        [("people",), ("workers",)]


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_second_copy_over_the_populated_hierarchy(copy, dbs, strategy):
    dbs.source.execute(HIERARCHY)
    assert copy("public.*").returncode == 0
    before = dict(dbs.target.query("SELECT relname, oid::int FROM pg_class WHERE relname = "
                                   "ANY(%s)", ([t.split(".")[1] for t in TABLES],)))
    dbs.source.execute("DELETE FROM ONLY public.cars WHERE id = 11;"
                       "INSERT INTO public.vehicles (id) VALUES (3);"
                       "INSERT INTO public.sports_cars (id, wheels) VALUES (21, 4), (22, 4)")
    result = copy("public.*", "--strategy", strategy, "--verify", "checksum")
    assert result.returncode == 0, result.stderr
    assert_same_hierarchy(dbs, TABLES)
    assert {e["table"]: e["rows"] for e in result.events_of("table_copied")} == \
        dict(OWN_ROWS, **{"public.vehicles": 3, "public.cars": 2, "public.sports_cars": 3})
    after = dict(dbs.target.query("SELECT relname, oid::int FROM pg_class WHERE relname = "
                                  "ANY(%s)", ([t.split(".")[1] for t in TABLES],)))
    # truncate keeps the tables (TRUNCATE ONLY each: a parent's would empty its children);
    # swap replaces them all.
    if strategy == "truncate":
        assert after == before
    else:
        assert not set(after.values()) & set(before.values())


# A hierarchy is one swap unit whatever --swap-scope (its staged children inherit its staged
# parents: they can only flip together).
@pytest.mark.parametrize("scope", ["table", "linked"])
def test_a_reader_of_the_parent_never_sees_a_half_swapped_hierarchy(copy, dbs, scope):
    dbs.source.execute("""
        CREATE TABLE public.events (id int, night int);
        CREATE TABLE public.clicks (url text) INHERITS (public.events);
        CREATE TABLE public.views (page text) INHERITS (public.events);
        INSERT INTO public.events SELECT g, 1 FROM generate_series(1, 10) g;
        INSERT INTO public.clicks SELECT g, 1, 'u' FROM generate_series(1, 100000) g;
        INSERT INTO public.views SELECT g, 1, 'p' FROM generate_series(1, 50000) g""")
    assert copy("public.*").returncode == 0, "first copy"
    dbs.source.execute("UPDATE public.events SET night = 2")  # every table's rows, night 2
    seen: set[tuple] = set()
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        conn = psycopg2.connect(dbs.target.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                try:
                    cur.execute("SELECT night, count(*) FROM public.events GROUP BY night")
                    seen.add(tuple(sorted(cur.fetchall())))
                except psycopg2.Error as exc:
                    errors.append(str(exc).strip())
                time.sleep(0.002)
        conn.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = copy("public.*", "--swap-scope", scope, "--jobs", "3")
    finally:
        time.sleep(0.2)
        stop.set()
        reader.join(10)
    assert result.returncode == 0, result.stderr
    assert errors == []
    # The whole old hierarchy, then the whole new one: never a parent without its children.
    assert seen <= {((1, 150010),), ((2, 150010),)}, seen
    assert ((2, 150010),) in seen


def test_a_child_listed_without_its_parent_is_a_table_of_its_own(copy, dbs):
    dbs.source.execute("CREATE TABLE public.animals (id int, name text);"
                       "CREATE TABLE public.cats (lives int) INHERITS (public.animals);"
                       "INSERT INTO public.animals VALUES (1, 'generic');"
                       "INSERT INTO public.cats VALUES (2, 'tom', 9)")
    result = copy("public.cats", "--verify", "checksum")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT id, name, lives FROM public.cats") == [(2, "tom", 9)]
    assert dbs.target.scalar("SELECT count(*) FROM pg_inherits") == 0
    # Today's warning, now with the fix: list the parent too.
    assert any("public.cats inherits from public.animals" in e["message"]
               and "list public.animals too to copy the hierarchy" in e["message"]
               for e in result.events_of("warning"))


def test_a_parent_listed_without_its_children_gets_its_own_rows_and_a_warning(copy, dbs):
    dbs.source.execute("CREATE TABLE public.animals (id int, name text);"
                       "CREATE TABLE public.cats (lives int) INHERITS (public.animals);"
                       "CREATE TABLE public.dogs () INHERITS (public.animals);"
                       "INSERT INTO public.animals VALUES (1, 'generic');"
                       "INSERT INTO public.cats VALUES (2, 'tom', 9);"
                       "INSERT INTO public.dogs VALUES (3, 'rex')")
    result = copy("public.animals,public.dogs")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT id FROM public.animals ORDER BY id") == [(1,), (3,)]
    assert dbs.target.scalar("SELECT to_regclass('public.cats')") is None
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("public.animals has inheritance children that are not copied with it as its "
               "children (public.cats)" in w for w in warnings), warnings


def test_from_pg15_a_child_pg18_cannot_inherit_is_its_own(pg15, pg_servers, cli):  # noqa: F811
    # PostgreSQL 15 let a child generate a column its parent does not; 16 and later refuse it.
    source = Db(pg15.create_database("inh_src"))
    target = Db(pg_servers[1].create_database("inh_tgt"))
    source.execute("""
        CREATE TABLE public.readings (a int PRIMARY KEY, b int);
        CREATE TABLE public.doubled (a int, b int GENERATED ALWAYS AS (a * 2) STORED)
            INHERITS (public.readings);
        CREATE TABLE public.plain (a int NOT NULL, b int) INHERITS (public.readings);
        INSERT INTO public.readings VALUES (1, 1);
        INSERT INTO public.doubled (a) VALUES (2);
        INSERT INTO public.plain VALUES (3, 3)""")
    result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables", "public.*"])
    assert result.returncode == 0, result.stderr
    assert target.query("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON "
                        "c.oid = i.inhrelid") == [("plain",)]
    assert target.query("SELECT * FROM public.doubled") == [(2, 4)]
    assert target.query("SELECT * FROM public.readings ORDER BY a") == [(1, 1), (3, 3)]
    assert any("public.doubled inherits from public.readings, but its column b is generated"
               in e["message"] for e in result.events_of("warning"))
    # plain.a's NOT NULL comes from the parent's key (PostgreSQL 15 records no more): it is
    # inherited on the target, as pg_dump shows it, not declared by the child.
    assert target.query("SELECT conislocal, coninhcount FROM pg_constraint WHERE contype = 'n' "
                        "AND conrelid = 'public.plain'::regclass") == [(False, 1)]
    # A PostgreSQL 15 target takes the hierarchy as the source has it.
    target15 = Db(pg15.create_database("inh_tgt15"))
    result = cli(["copy", "--source", source.dsn, "--target", target15.dsn, "--tables",
                  "public.*"])
    assert result.returncode == 0, result.stderr
    assert target15.query("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON "
                          "c.oid = i.inhrelid ORDER BY 1") == [("doubled",), ("plain",)]
    assert target15.query("SELECT * FROM public.readings ORDER BY a") == [(1, 1), (2, 4), (3, 3)]
    assert not [e for e in result.events_of("warning") if "inherit" in e["message"]]


def test_pg15_target_takes_a_childs_generated_column_from_its_parent(pg15, cli):  # noqa: F811
    # pgregress's gtest1/gtestxx_3: a child whose generated column (its own, attislocal) a
    # generated column of its parent matches. PostgreSQL 15 refuses a child's own generation
    # expression in CREATE TABLE ... INHERITS: it is declared plain and inherits the parent's.
    source = Db(pg15.create_database("gen_src"))
    target = Db(pg15.create_database("gen_tgt"))
    source.execute("""
        CREATE TABLE public.gtest1 (a int PRIMARY KEY, b int GENERATED ALWAYS AS (a * 2) STORED);
        CREATE TABLE public.gtestxx (a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED);
        ALTER TABLE public.gtestxx INHERIT public.gtest1;
        INSERT INTO public.gtest1 (a) VALUES (1);
        INSERT INTO public.gtestxx (a) VALUES (2)""")
    tables = ["public.gtest1", "public.gtestxx"]
    result = cli(["copy", "--source", source.dsn, "--target", target.dsn, "--tables",
                  ",".join(tables)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_hierarchy(type("Pair", (), {"source": source, "target": target}), tables)
    target.execute("INSERT INTO public.gtestxx (a) VALUES (3)")
    assert target.scalar("SELECT b FROM public.gtestxx WHERE a = 3") == 6


def test_a_hierarchy_fails_whole_when_one_of_its_tables_cannot_be_copied(copy, dbs):
    # The child's check calls a function that is not trusted: the child is refused before
    # anything is written, and so is its parent (swapped alone it would lose its child).
    dbs.source.execute("""
        CREATE FUNCTION public.is_even(n int) RETURNS boolean LANGUAGE sql IMMUTABLE
            AS 'SELECT n % 2 = 0';
        CREATE TABLE public.numbers (n int);
        CREATE TABLE public.evens (CONSTRAINT even CHECK (public.is_even(n)))
            INHERITS (public.numbers);
        CREATE TABLE public.unrelated (x int);
        INSERT INTO public.numbers VALUES (1); INSERT INTO public.evens VALUES (2)""")
    result = copy("public.*")
    assert result.returncode == 1
    failed = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert set(failed) == {"public.numbers", "public.evens"}
    assert "public.evens of that hierarchy cannot be copied" in failed["public.numbers"]
    assert [e["table"] for e in result.events_of("table_copied")] == ["public.unrelated"]
    assert dbs.target.scalar("SELECT to_regclass('public.numbers')") is None


@pytest.mark.parametrize("strategy", ["swap", "truncate"])
def test_a_target_parent_with_children_not_copied_fails_naming_them(copy, dbs, strategy):
    dbs.source.execute("CREATE TABLE public.animals (id int); INSERT INTO public.animals "
                       "VALUES (1)")
    assert copy("public.animals").returncode == 0
    dbs.target.execute("CREATE TABLE public.pets (owner text) INHERITS (public.animals);"
                       "INSERT INTO public.pets VALUES (7, 'ann')")
    result = copy("public.animals", "--strategy", strategy)
    assert result.returncode == 1
    [error] = [e["error"] for e in result.events_of("table_failed")]
    assert "inheritance children that are not copied with it (public.pets)" in error, error
    assert dbs.target.query("SELECT id FROM public.animals ORDER BY id") == [(1,), (7,)]


def test_a_hierarchy_loads_as_one_and_leaves_no_staged_table_when_a_child_is_refused(copy, dbs):
    # The target's own public.cats (not created by nightcopy) is refused under a glob when
    # its load begins: the hierarchy's load transaction, with the staged parent already
    # built in it, is rolled back whole, and the parent is not swapped in alone.
    dbs.source.execute("CREATE TABLE public.animals (id int); CREATE TABLE public.cats "
                       "(lives int) INHERITS (public.animals); INSERT INTO public.animals "
                       "VALUES (1); INSERT INTO public.cats VALUES (2, 9)")
    dbs.target.execute("CREATE TABLE public.cats (id int, lives int)")
    result = copy("public.*", "--swap-scope", "table")
    assert result.returncode == 1
    failed = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert set(failed) == {"public.animals", "public.cats"}, failed
    assert "public.cats" in failed["public.animals"]
    assert dbs.target.scalar("SELECT to_regclass('public.animals')") is None
    assert dbs.target.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage%%' "
                             "AND c.relkind IN ('r', 'p')") == 0
