"""Schema fidelity of what a table carries beyond its columns and rows: NOT VALID constraints,
sequence definitions and states, grant options, column and table storage, index roles, typed
tables. Each test defines it on the source, copies, and compares the target's catalog with the
source's; then copies again over the populated target (swap and truncate), which must keep it.
"""

from __future__ import annotations

import psycopg2.extensions
import pytest

from tests.conftest import Db


def _same(dbs, sql: str) -> list[tuple]:
    """The query's rows on both sides, asserted equal."""
    source, target = dbs.source.query(sql), dbs.target.query(sql)
    assert target == source
    return source


CONSTRAINTS = """
    SELECT conrelid::regclass::text, conname, contype, convalidated, connoinherit, conislocal,
           coninhcount, pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2, 3"""


@pytest.mark.parametrize("again", ["swap", "truncate"])
def test_not_valid_constraints_stay_not_valid_and_keep_the_rows_breaking_them(copy, dbs, again):
    dbs.source.execute("""
        CREATE TABLE public.parents (id int PRIMARY KEY);
        CREATE TABLE public.kids (id int PRIMARY KEY, parent int, v int);
        INSERT INTO public.parents VALUES (1);
        INSERT INTO public.kids VALUES (1, 1, -5), (2, 99, 3);
        ALTER TABLE public.kids ADD CONSTRAINT v_positive CHECK (v > 0) NOT VALID;
        ALTER TABLE public.kids ADD CONSTRAINT v_small CHECK (v < 100) NO INHERIT;
        ALTER TABLE public.kids ADD CONSTRAINT kids_parent_fkey FOREIGN KEY (parent)
              REFERENCES public.parents NOT VALID;
        CREATE TABLE public.events (id int, at date, n int) PARTITION BY RANGE (at);
        CREATE TABLE public.events_2024 PARTITION OF public.events
               FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO public.events VALUES (1, '2024-05-01', -1);
        ALTER TABLE public.events ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID;
        ALTER TABLE public.events_2024 ADD CONSTRAINT n_small CHECK (n < 10) NOT VALID;
    """)
    tables = "public.parents,public.kids,public.events"
    result = copy(tables)
    assert result.returncode == 0, result.stderr
    rows = _same(dbs, CONSTRAINTS)
    assert ("kids", "v_positive", "c", False) in [r[:4] for r in rows]
    assert dbs.target.query("SELECT id, v FROM public.kids ORDER BY id") == [(1, -5), (2, 3)]
    assert dbs.target.scalar("SELECT n FROM public.events") == -1
    result = copy(tables, "--strategy", again)
    assert result.returncode == 0, result.stderr
    _same(dbs, CONSTRAINTS)


def test_truncate_keeps_rows_a_not_valid_foreign_key_of_the_table_itself_lets_through(copy, dbs):
    """The table's own keys are dropped for the load and re-added from the source's definition
    after it (NOT VALID stays NOT VALID): a self-referencing key cannot depend on load order."""
    dbs.source.execute("""
        CREATE TABLE public.tree (id int PRIMARY KEY, up int);
        INSERT INTO public.tree VALUES (1, NULL), (2, 1), (3, 99);
        ALTER TABLE public.tree ADD CONSTRAINT tree_up_fkey FOREIGN KEY (up)
              REFERENCES public.tree NOT VALID;
        CREATE TABLE public.leaf (id int PRIMARY KEY, tree int);
        INSERT INTO public.leaf VALUES (1, 3), (2, 77);
        ALTER TABLE public.leaf ADD CONSTRAINT leaf_tree_fkey FOREIGN KEY (tree)
              REFERENCES public.tree NOT VALID;
    """)
    for strategy in ("swap", "truncate", "truncate"):
        result = copy("public.leaf,public.tree", "--strategy", strategy, "--jobs", "1")
        assert result.returncode == 0, result.stderr
        assert dbs.target.query("SELECT id, up FROM public.tree ORDER BY id") == [
            (1, None), (2, 1), (3, 99)]
        assert dbs.target.query("SELECT id, tree FROM public.leaf ORDER BY id") == [
            (1, 3), (2, 77)]
        _same(dbs, CONSTRAINTS)


SEQUENCES = """
    SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
           s.seqmax, s.seqcache, s.seqcycle
      FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
     WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1"""


def _sequence_states(db: Db) -> dict[str, tuple]:
    names = [n for n, in db.query("SELECT relname FROM pg_class WHERE relkind = 'S' AND "
                                  "relnamespace = 'public'::regnamespace ORDER BY 1")]
    return {n: db.query(f"SELECT last_value, is_called FROM public.{n}")[0] for n in names}


@pytest.mark.parametrize("again", ["swap", "truncate"])
def test_sequences_end_exactly_as_on_the_source_with_their_definition(copy, dbs, again):
    dbs.source.execute("""
        CREATE SEQUENCE public.free_seq AS integer INCREMENT 7 MINVALUE -50 MAXVALUE 5000
               START 3 CACHE 4 CYCLE;
        CREATE TABLE public.a (id bigint DEFAULT nextval('public.free_seq'), v text);
        CREATE TABLE public.b (id serial, v text);
        CREATE TABLE public.c (id smallint GENERATED BY DEFAULT AS IDENTITY
                               (INCREMENT 3 START 10 MAXVALUE 900 CACHE 2), v text);
        CREATE TABLE public.d (id int GENERATED ALWAYS AS IDENTITY, v text);
        INSERT INTO public.a (v) VALUES ('x'), ('y');
        SELECT setval('public.free_seq', 40, false);
        SELECT setval('public.b_id_seq', 9, false);
        INSERT INTO public.c (v) VALUES ('x');
        SELECT setval('public.d_id_seq', 5, false);
    """)
    tables = "public.a,public.b,public.c,public.d"
    result = copy(tables)
    assert result.returncode == 0, result.stderr
    _same(dbs, SEQUENCES)
    assert _sequence_states(dbs.target) == _sequence_states(dbs.source)
    assert _sequence_states(dbs.source)["free_seq"] == (40, False)
    # The source moves on; the target's sequences follow it exactly.
    dbs.source.execute("ALTER SEQUENCE public.free_seq INCREMENT 2 MAXVALUE 6000;"
                       "SELECT setval('public.free_seq', 41, true);"
                       "INSERT INTO public.b (v) VALUES ('z')")
    result = copy(tables, "--strategy", again)
    assert result.returncode == 0, result.stderr
    _same(dbs, SEQUENCES)
    assert _sequence_states(dbs.target) == _sequence_states(dbs.source)


def test_a_sequence_behind_its_column_is_copied_as_is_with_a_warning(copy, dbs):
    dbs.source.execute("""
        CREATE TABLE public.t (id int GENERATED BY DEFAULT AS IDENTITY, v text);
        INSERT INTO public.t (id, v) VALUES (1, 'a'), (2, 'b'), (50, 'c');
        INSERT INTO public.t (v) VALUES ('d');
        CREATE TABLE public.ok (id serial, v text);
        INSERT INTO public.ok (v) VALUES ('a');
    """)
    result = copy("public.t,public.ok")
    assert result.returncode == 0, result.stderr
    assert _sequence_states(dbs.target) == _sequence_states(dbs.source)
    warnings = [e["message"] for e in result.events_of("warning")]
    behind = [w for w in warnings if "behind" in w]
    assert len(behind) == 1, warnings
    assert "public.t_id_seq" in behind[0] and "id" in behind[0]
    assert "1" in behind[0] and "50" in behind[0] and "\n" not in behind[0]


def test_grants_with_grant_option_keep_it_on_a_new_table(copy, dbs):
    for db in (dbs.source, dbs.target):  # roles are per server, shared by the tests
        db.execute("DO $$ BEGIN CREATE ROLE nc_granted; "
                   "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    dbs.source.execute("""
        CREATE TABLE public.g (id int, secret text, note text);
        GRANT SELECT ON public.g TO nc_granted WITH GRANT OPTION;
        GRANT INSERT ON public.g TO nc_granted;
        GRANT UPDATE (note) ON public.g TO nc_granted WITH GRANT OPTION;
    """)
    result = copy("public.g")
    assert result.returncode == 0, result.stderr
    grants = _same(dbs, """
        SELECT NULL::text, a.privilege_type, a.is_grantable
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'public.g'::regclass AND a.grantee = 'nc_granted'::regrole
        UNION ALL
        SELECT att.attname::text, a.privilege_type, a.is_grantable
          FROM pg_attribute att, aclexplode(att.attacl) a
         WHERE att.attrelid = 'public.g'::regclass AND a.grantee = 'nc_granted'::regrole
         ORDER BY 1, 2""")
    assert (None, "SELECT", True) in grants and ("note", "UPDATE", True) in grants


COLUMN_STORAGE = """
    SELECT attrelid::regclass::text, attname, attstorage, attcompression,
           NULLIF(attstattarget, -1), attoptions
      FROM pg_attribute WHERE attrelid IN ('public.s'::regclass, 'public.sp'::regclass,
                                           'public.sp_1'::regclass)
       AND attnum > 0 ORDER BY 1, attnum"""
TABLE_STORAGE = """
    SELECT c.relname, am.amname, c.reloptions, t.reloptions, c.relrowsecurity,
           c.relforcerowsecurity, c.relreplident
      FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam
      LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1"""
INDEXES = """
    SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident,
           ic.reloptions
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
      JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1, 2"""


@pytest.mark.parametrize("again", ["swap", "truncate"])
def test_column_and_table_storage_and_index_details_are_copied(copy, dbs, again):
    dbs.source.execute("""
        CREATE TABLE public.s (id int NOT NULL, body text, doc text, n numeric, k text,
                               words tsvector)
               WITH (fillfactor = 70, toast.autovacuum_enabled = false);
        ALTER TABLE public.s ALTER COLUMN body SET STORAGE EXTERNAL,
              ALTER COLUMN doc SET COMPRESSION pglz, ALTER COLUMN doc SET STORAGE MAIN,
              ALTER COLUMN n SET STATISTICS 500, ALTER COLUMN n SET (n_distinct = -0.5),
              ALTER COLUMN id SET STORAGE PLAIN;
        CREATE UNIQUE INDEX s_id ON public.s (id) INCLUDE (n) WITH (fillfactor = 60);
        CREATE UNIQUE INDEX s_k ON public.s (k COLLATE "C" DESC NULLS LAST) NULLS NOT DISTINCT;
        CREATE INDEX s_words ON public.s USING gist (words tsvector_ops (siglen = 100));
        ALTER TABLE public.s CLUSTER ON s_k;
        ALTER TABLE public.s REPLICA IDENTITY USING INDEX s_id;
        INSERT INTO public.s VALUES (1, repeat('x', 5000), 'd', 1.5, 'a', 'a b');
        CREATE TABLE public.f (id int PRIMARY KEY, v text);
        ALTER TABLE public.f REPLICA IDENTITY FULL;
        ALTER TABLE public.f ENABLE ROW LEVEL SECURITY;
        ALTER TABLE public.f FORCE ROW LEVEL SECURITY;
        CREATE POLICY mine ON public.f USING (true);
        INSERT INTO public.f VALUES (1, 'a');
        CREATE TABLE public.sp (id int, body text) PARTITION BY LIST (id);
        CREATE TABLE public.sp_1 PARTITION OF public.sp FOR VALUES IN (1);
        ALTER TABLE public.sp ALTER COLUMN body SET STORAGE EXTERNAL;
        INSERT INTO public.sp VALUES (1, 'x');
    """)
    tables = "public.s,public.f,public.sp"
    result = copy(tables)
    assert result.returncode == 0, result.stderr
    for query in (COLUMN_STORAGE, TABLE_STORAGE, INDEXES):
        _same(dbs, query)
    assert dbs.target.scalar("SELECT count(*) FROM public.s") == 1
    result = copy(tables, "--strategy", again)
    assert result.returncode == 0, result.stderr
    for query in (COLUMN_STORAGE, TABLE_STORAGE, INDEXES):
        _same(dbs, query)


@pytest.mark.parametrize("again", ["swap", "truncate"])
def test_partitions_keep_their_own_storage_options_and_access_method(copy, dbs, again):
    dbs.source.execute("""
        CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
        CREATE TABLE public.pt (id int, body text) PARTITION BY RANGE (id);
        CREATE TABLE public.pt_1 PARTITION OF public.pt FOR VALUES FROM (0) TO (10)
               WITH (fillfactor = 60, toast.autovacuum_enabled = false);
        CREATE TABLE public.pt_2 PARTITION OF public.pt FOR VALUES FROM (10) TO (20)
               PARTITION BY LIST (id);
        CREATE TABLE public.pt_2a PARTITION OF public.pt_2 FOR VALUES IN (10, 11)
               USING heap2 WITH (autovacuum_vacuum_scale_factor = 0.01);
        CREATE TABLE public.pt_2b PARTITION OF public.pt_2 DEFAULT;
        INSERT INTO public.pt VALUES (1, 'a'), (10, 'b'), (15, 'c');
    """)
    dbs.target.execute("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler")
    result = copy("public.pt")
    assert result.returncode == 0, result.stderr
    rows = _same(dbs, TABLE_STORAGE)
    assert ("pt_2a", "heap2", ["autovacuum_vacuum_scale_factor=0.01"]) in [r[:3] for r in rows]
    assert ("pt_1", "heap", ["fillfactor=60"], ["autovacuum_enabled=false"]) in \
        [r[:4] for r in rows]
    result = copy("public.pt", "--strategy", again)
    assert result.returncode == 0, result.stderr
    _same(dbs, TABLE_STORAGE)
    assert dbs.target.query("SELECT * FROM public.pt ORDER BY 1") == \
        [(1, "a"), (10, "b"), (15, "c")]


def test_a_table_access_method_the_target_lacks_fails_that_table_naming_it(copy, dbs):
    dbs.source.execute("""
        CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
        CREATE TABLE public.h (id int) USING heap2;
        INSERT INTO public.h VALUES (1);
        CREATE TABLE public.plain (id int);
    """)
    result = copy("public.h,public.plain")
    assert result.returncode == 1
    failed = [e for e in result.events_of("table_failed") if e["table"] == "public.h"]
    assert failed and "heap2" in failed[0]["error"] and "\n" not in failed[0]["error"]
    assert dbs.target.scalar("SELECT to_regclass('public.plain') IS NOT NULL")
    dbs.target.execute("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler")
    result = copy("public.h")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                             "WHERE c.oid = 'public.h'::regclass") == "heap2"


TYPED = """
    SELECT c.relname, c.reloftype::regtype::text, a.attname, format_type(a.atttypid, a.atttypmod),
           a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attislocal
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1, a.attnum"""


@pytest.mark.parametrize("again", ["swap", "truncate"])
def test_a_typed_table_is_created_of_its_type(copy, dbs, again):
    dbs.source.execute("""
        CREATE TYPE public.person AS (name text, age int);
        CREATE TABLE public.people OF public.person
               (name WITH OPTIONS NOT NULL, age WITH OPTIONS DEFAULT 18,
                CONSTRAINT adult CHECK (age >= 18), PRIMARY KEY (name));
        INSERT INTO public.people VALUES ('ann', 30);
    """)
    result = copy("public.people")
    assert result.returncode == 0, result.stderr
    assert _same(dbs, TYPED)[0][1] == "person"
    _same(dbs, CONSTRAINTS)
    result = copy("public.people", "--strategy", again)
    assert result.returncode == 0, result.stderr
    _same(dbs, TYPED)
    assert dbs.target.query("SELECT * FROM public.people") == [("ann", 30)]


def test_forced_row_security_is_copied_and_reloaded_by_a_worker_that_is_not_superuser(
        cli, dbs):
    """ENABLE/FORCE ROW LEVEL SECURITY come from the source (policies do not: README). Forced,
    it applies to the owner too, and COPY FROM refuses such a table: the load lifts it for the
    worker's own table and puts it back, in the same transaction, before the commit."""
    database = dbs.target.scalar("SELECT current_database()")
    dbs.target.execute(f"""
        DO $$ BEGIN CREATE ROLE nc_rls_worker LOGIN;
        EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        GRANT CREATE ON DATABASE "{database}" TO nc_rls_worker;
        GRANT CREATE ON SCHEMA public TO nc_rls_worker""")
    worker = psycopg2.extensions.make_dsn(dbs.target.dsn, user="nc_rls_worker")
    dbs.source.execute("""
        CREATE TABLE public.f (id int PRIMARY KEY, owner_name text);
        ALTER TABLE public.f ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
        CREATE POLICY own ON public.f USING (owner_name = current_user);
        INSERT INTO public.f VALUES (1, 'ann'), (2, 'bob');
    """)
    flags = ("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
             "WHERE oid = 'public.f'::regclass")
    for strategy in ("swap", "truncate", "swap"):
        result = cli(["copy", "--source", dbs.source.dsn, "--target", worker, "--tables",
                      "public.f", "--strategy", strategy, "--verify", "checksum"])
        assert result.returncode == 0, result.stderr
        assert dbs.target.query(flags) == [(True, True)]
        assert dbs.target.query("SELECT * FROM public.f ORDER BY id") == [(1, "ann"), (2, "bob")]
    assert dbs.target.scalar("SELECT count(*) FROM pg_policy") == 0  # policies are not copied
