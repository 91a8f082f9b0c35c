"""The copy engine against real PostgreSQL servers: what a user checks after a copy."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from tests.pgutil import connect, digests, schema_of, user_tables

CORPUS = (Path(__file__).parent / "sql" / "edge_corpus.sql").read_text()


def copy(cli, dbs, tables: str, *extra: str, env: dict | None = None):
    return cli(["copy", "--source", dbs.source.dsn, "--target", dbs.target.dsn, "--tables",
                tables, *extra], env=env)


def test_edge_corpus_is_copied_faithfully(cli, dbs):
    dbs.source.execute(CORPUS)
    result = copy(cli, dbs, "*.*", "--verify", "checksum", "--jobs", "3")
    assert result.returncode == 0, result.stderr
    tables = user_tables(dbs.source.dsn)
    assert user_tables(dbs.target.dsn) == tables
    # Same rows (every value's text form), same definitions (pg_dump of both sides).
    assert digests(dbs.target.dsn, tables) == digests(dbs.source.dsn, tables)
    # Triggers run application logic (and need its functions): they are not copied.
    source_schema = "\n".join(line for line in schema_of(dbs.source.dsn, tables).splitlines()
                              if not line.startswith("CREATE TRIGGER"))
    assert schema_of(dbs.target.dsn, tables) == source_schema
    assert dbs.target.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == 0
    copied = {e["table"] for e in result.events_of("table_copied")}
    # A partitioned table is one event; its partitions come with it.
    assert "archive.measurements" in copied and "archive.measurements_eu_2024" not in copied
    assert '"Sales Dept"."Order Items"' in copied and 'public."ünïcode_tåble"' in copied
    summary = result.events_of("run_summary")[0]
    assert summary["status"] == "succeeded" and summary["failed"] == 0
    assert summary["tables"] == len(copied) == 13
    # Sequences end at or past the source's value, identity included.
    for seq in ("public.shared_seq", "public.kitchen_sink_serial_col_seq",
                "public.kitchen_sink_id_seq"):
        src = dbs.source.scalar(f"SELECT last_value FROM {seq}")
        tgt = dbs.target.scalar(f"SELECT last_value FROM {seq}")
        assert tgt >= src, seq
    assert dbs.target.scalar("SELECT nextval('public.kitchen_sink_serial_col_seq')") > \
        dbs.source.scalar("SELECT max(serial_col) FROM public.kitchen_sink")
    # Foreign keys between copied tables are kept and validated.
    assert dbs.target.scalar("SELECT convalidated FROM pg_constraint WHERE conname = "
                             "'child_payments_account_id_fkey'") is True
    # Binary where portable, text where the binary form carries OIDs.
    formats = {e["table"]: e["format"] for e in result.events_of("table_copied")}
    assert formats["public.kitchen_sink"] == "text"
    assert formats['"Sales Dept"."Order Items"'] == "binary"
    # Nothing is left behind in the staging schemas.
    assert dbs.target.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname LIKE 'nightcopy_stage_%'") == 0


def test_second_copy_replaces_keeping_views_grants_and_target_indexes(cli, dbs):
    dbs.source.execute(CORPUS)
    assert copy(cli, dbs, "public.parent_accounts,public.child_payments").returncode == 0
    dbs.target.execute("""
        DO $$ BEGIN CREATE ROLE nightcopy_test_reader;
        EXCEPTION WHEN duplicate_object THEN NULL; END $$;
        CREATE VIEW public.big_payments AS SELECT id, amount FROM public.child_payments
            WHERE amount > 100;
        CREATE VIEW public.big_payment_count AS SELECT count(*) AS n FROM public.big_payments;
        COMMENT ON VIEW public.big_payments IS 'kept';
        GRANT SELECT ON public.child_payments, public.big_payments TO nightcopy_test_reader;
        CREATE INDEX reporting_only_idx ON public.child_payments (amount DESC);
        ALTER TABLE public.child_payments ENABLE ROW LEVEL SECURITY;
        CREATE POLICY small_only ON public.child_payments FOR SELECT TO nightcopy_test_reader
            USING (amount < 500);
        CREATE STATISTICS public.pay_stats (ndistinct) ON id, account_id
            FROM public.child_payments;
        CREATE PUBLICATION reporting_pub FOR TABLE public.child_payments;
    """)
    old_oid = dbs.target.scalar("SELECT 'public.child_payments'::regclass::oid")
    dbs.source.execute("INSERT INTO public.child_payments VALUES (5000, 3, 999.99, NULL)")
    result = copy(cli, dbs, "public.parent_accounts,public.child_payments")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT 'public.child_payments'::regclass::oid") != old_oid
    assert dbs.target.scalar("SELECT count(*) FROM public.child_payments") == 1001
    assert dbs.target.scalar("SELECT n FROM public.big_payment_count") == \
        dbs.source.scalar("SELECT count(*) FROM public.child_payments WHERE amount > 100")
    assert dbs.target.scalar("SELECT obj_description('public.big_payments'::regclass)") == "kept"
    for rel in ("public.child_payments", "public.big_payments"):
        assert dbs.target.scalar("SELECT has_table_privilege('nightcopy_test_reader', %s, "
                                 "'SELECT')", (rel,)) is True
    assert dbs.target.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = "
                             "'reporting_only_idx'") == 1
    assert dbs.target.scalar("SELECT convalidated FROM pg_constraint WHERE conname = "
                             "'child_payments_account_id_fkey'") is True
    # Target-side row-level security, statistics and publication membership carried over.
    assert dbs.target.scalar("SELECT relrowsecurity FROM pg_class WHERE oid = "
                             "'public.child_payments'::regclass") is True
    assert dbs.target.query("SELECT policyname, qual FROM pg_policies WHERE tablename = "
                            "'child_payments'") == [("small_only", "(amount < (500)::numeric)")]
    assert dbs.target.scalar("SELECT count(*) FROM pg_statistic_ext WHERE stxname = "
                             "'pay_stats'") == 1
    assert dbs.target.scalar("SELECT count(*) FROM pg_publication_tables WHERE pubname = "
                             "'reporting_pub' AND tablename = 'child_payments'") == 1


def test_readers_see_old_rows_until_the_swap_then_new_rows(cli, dbs):
    dbs.source.execute("CREATE TABLE public.facts (id bigint PRIMARY KEY, v text);"
                       "INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1, 1000) g")
    assert copy(cli, dbs, "public.facts").returncode == 0
    dbs.source.execute("INSERT INTO public.facts SELECT g, md5(g::text) FROM "
                       "generate_series(1001, 300000) g")
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        conn = psycopg2.connect(dbs.target.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("SELECT count(*) FROM public.facts")
                    seen.append(cur.fetchone()[0])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = copy(cli, dbs, "public.facts")
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert not errors, errors
    assert set(seen) <= {1000, 300000}, sorted(set(seen))[:10]
    assert seen[0] == 1000 and seen[-1] == 300000
    # Never back to the old version once the new one showed.
    assert seen[seen.index(300000):] == [300000] * (len(seen) - seen.index(300000))


def test_truncate_strategy_keeps_the_table_and_its_dependents(cli, dbs):
    dbs.source.execute(CORPUS)
    assert copy(cli, dbs, "archive.measurements,public.wide_text").returncode == 0
    dbs.target.execute("CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) FROM "
                       "archive.measurements")
    oid = dbs.target.scalar("SELECT 'archive.measurements'::regclass::oid")
    dbs.source.execute("DELETE FROM archive.measurements WHERE id % 2 = 0")
    swap = copy(cli, dbs, "archive.measurements")
    assert swap.returncode == 1
    assert "materialized view public.mv" in swap.stderr and "--strategy truncate" in swap.stderr
    result = copy(cli, dbs, "archive.measurements", "--strategy", "truncate", "--verify",
                  "checksum")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT 'archive.measurements'::regclass::oid") == oid
    tables = [t for t in user_tables(dbs.source.dsn) if t.startswith("archive.")]
    assert digests(dbs.target.dsn, tables) == digests(dbs.source.dsn, tables)


def test_one_bad_table_fails_alone_and_stays_as_it_was(cli, dbs):
    dbs.source.execute(CORPUS)
    assert copy(cli, dbs, "public.parent_accounts,public.scratch").returncode == 0
    dbs.target.execute("CREATE MATERIALIZED VIEW public.mv AS SELECT * FROM public.scratch")
    before = digests(dbs.target.dsn, ["public.scratch"])
    dbs.source.execute("DELETE FROM public.scratch; DELETE FROM public.child_payments;"
                       "DELETE FROM public.parent_accounts WHERE id > 10")
    result = copy(cli, dbs, "public.parent_accounts,public.scratch")
    assert result.returncode == 1
    failed = result.events_of("table_failed")
    assert [e["table"] for e in failed] == ["public.scratch"]
    assert "materialized view public.mv depends on it" in failed[0]["error"]
    assert digests(dbs.target.dsn, ["public.scratch"]) == before
    assert dbs.target.scalar("SELECT count(*) FROM public.parent_accounts") == 10
    summary = result.events_of("run_summary")[0]
    assert summary["status"] == "failed" and summary["failed_tables"] == ["public.scratch"]
    assert "Traceback" not in result.stderr


def test_resume_skips_tables_the_run_already_copied(cli, dbs):
    dbs.source.execute(CORPUS)
    first = copy(cli, dbs, "public.parent_accounts", "--run-id", "nightly-2026-11-25")
    assert first.returncode == 0
    second = copy(cli, dbs, "public.parent_accounts,public.wide_text", "--run-id",
                  "nightly-2026-11-25")
    assert second.returncode == 0, second.stderr
    assert [e["table"] for e in second.events_of("table_skipped")] == ["public.parent_accounts"]
    assert [e["table"] for e in second.events_of("table_copied")] == ["public.wide_text"]
    rows = dbs.target.query("SELECT table_name, status FROM nightcopy.table_results WHERE "
                            "run_id = 'nightly-2026-11-25' ORDER BY 1")
    assert rows == [("public.parent_accounts", "copied"), ("public.wide_text", "copied")]


def test_a_table_held_by_another_run_fails_at_once_naming_it(cli, dbs):
    dbs.source.execute("CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1)")
    holder = psycopg2.connect(dbs.target.dsn, application_name="nightcopy:nightly-2026-11-24")
    cur = holder.cursor()
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('nightcopy'), hashtext('public.t'))")
    try:
        result = copy(cli, dbs, "public.t")
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    assert "nightcopy:nightly-2026-11-24" in result.stderr
    assert "being copied right now" in result.stderr


def test_json_events_and_report_file(cli, dbs, tmp_path):
    dbs.source.execute('CREATE TABLE public."Order Items" (id int PRIMARY KEY);'
                       'INSERT INTO public."Order Items" SELECT generate_series(1, 42)')
    result = copy(cli, dbs, 'public."Order Items"', "--group", "g1", "--run-id", "r1",
                  "--report-uri", f"file://{tmp_path}")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)  # stdout is JSON lines only
    event = result.events_of("table_copied")[0]
    assert event["table"] == 'public."Order Items"' and event["rows"] == 42
    assert event["group"] == "g1" and event["run_id"] == "r1" and event["bytes"] > 0
    assert {"seconds", "copy_seconds", "index_seconds"} <= set(event)
    report = json.loads((tmp_path / "r1" / "g1.json").read_text())
    assert report["status"] == "succeeded" and report["rows"] == 42
    assert report["results"][0]["table"] == 'public."Order Items"'


@pytest.mark.parametrize("tables, message", [
    ("public.nope", "public.nope does not exist on the source"),
    ("x; drop table y", "is not a table name"),
    ("public.t, public.t", "listed twice"),
    ("", "table list is empty"),
    ("  ,  ", "empty item"),
    ('["public.t"', "not valid JSON"),
    ("[]", "table list is empty"),
    ("nosuchschema.*", "matches no table"),
    ("public.v", "is a view"),
    ("public.p_1", "is a partition of public.p"),
    ("public.Caps", 'did you mean public."Caps"'),
])
def test_bad_table_lists_fail_before_touching_the_target(cli, dbs, tables, message):
    dbs.source.execute('CREATE TABLE public.t (id int); CREATE TABLE public."Caps" (id int);'
                       "CREATE VIEW public.v AS SELECT 1 AS x;"
                       "CREATE TABLE public.p (id int) PARTITION BY RANGE (id);"
                       "CREATE TABLE public.p_1 PARTITION OF public.p FOR VALUES FROM (0) TO (9)")
    result = copy(cli, dbs, tables)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("nightcopy: error:") and "Traceback" not in result.stderr
    assert result.stdout == ""
    # Not even the ledger was written.
    assert dbs.target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
                             "'nightcopy%'") == 0


def test_same_database_is_refused(cli, dbs):
    dbs.source.execute("CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1)")
    # The same database, written differently.
    other_spelling = psycopg2.extensions.make_dsn(dbs.source.dsn, connect_timeout=7)
    result = cli(["copy", "--source", dbs.source.dsn, "--target", other_spelling,
                  "--tables", "public.t"])
    assert result.returncode == 1
    assert "the source and the target are the same database" in result.stderr
    assert dbs.source.scalar("SELECT count(*) FROM public.t") == 1


def test_unreachable_host_and_bad_dsn_are_clear_and_never_echo_the_password(cli, dbs):
    secret = "s3cr3t-Pa55word"
    bad = cli(["copy", "--source", f"postgresql://app:{secret}@127.0.0.1:1/db",
               "--target", dbs.target.dsn, "--tables", "public.t"])
    assert bad.returncode == 1
    assert "cannot reach the source database (postgresql://app:***@127.0.0.1:1/db)" in bad.stderr
    malformed = cli(["copy", "--source", f"host=x password={secret} port", "--target",
                     dbs.target.dsn, "--tables", "public.t"])
    assert malformed.returncode == 1
    assert "source DSN is not a valid libpq connection string" in malformed.stderr
    for r in (bad, malformed):
        assert secret not in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_usage_errors_exit_2(cli):
    assert cli(["copy", "--jobs", "zero"]).returncode == 2
    assert cli(["copy", "--strategy", "rename"]).returncode == 2
    assert cli(["copy", "--no-such-option"]).returncode == 2


def test_environment_variables_and_flag_precedence(cli, dbs):
    dbs.source.execute("CREATE TABLE public.a (id int); CREATE TABLE public.b (id int)")
    env = {"NIGHTCOPY_SOURCE_DSN": dbs.source.dsn, "NIGHTCOPY_TARGET_DSN": dbs.target.dsn,
           "NIGHTCOPY_TABLES": "public.a", "NIGHTCOPY_RUN_ID": "from-env"}
    from_env = cli(["copy"], env=env)
    assert from_env.returncode == 0, from_env.stderr
    assert [e["table"] for e in from_env.events_of("table_copied")] == ["public.a"]
    assert from_env.events_of("run_summary")[0]["run_id"] == "from-env"
    flag = cli(["copy", "--tables", "public.b"], env=env)
    assert [e["table"] for e in flag.events_of("table_copied")] == ["public.b"]


def test_connect_helper_settings_match(dbs):
    # The text settings used for checksums are applied identically on both sides.
    a, b = connect(dbs.source.dsn), connect(dbs.target.dsn)
    for setting in ("DateStyle", "IntervalStyle", "extra_float_digits", "TimeZone"):
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute(f"SHOW {setting}")
            cb.execute(f"SHOW {setting}")
            assert ca.fetchone() == cb.fetchone()


def test_memory_stays_bounded_whatever_the_table_size(dbs):
    """The worker streams: ~250 MB of COPY data must not grow its memory past 100 MB."""
    import subprocess
    import sys

    dbs.source.execute("CREATE TABLE public.big (id bigint PRIMARY KEY, pad text);"
                       "INSERT INTO public.big SELECT g, repeat(md5(g::text), 7) FROM "
                       "generate_series(1, 1000000) g")
    proc = subprocess.Popen([sys.executable, "-m", "nightcopy", "copy", "--source",
                             dbs.source.dsn, "--target", dbs.target.dsn, "--tables", "public.big"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # VmHWM is the process's own peak RSS since exec. (getrusage/wait4 would also count the
    # pages of this big pytest process it was forked from.) It only grows, so the last reading
    # before the process exits is its peak, give or take the final few milliseconds.
    peak_kib = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert peak_kib > 0
    copied = [json.loads(line) for line in stdout.splitlines() if '"table_copied"' in line][0]
    assert copied["bytes"] > 240_000_000
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_missing_extension_or_function_fails_that_table_alone(cli, dbs):
    dbs.source.execute("""
        CREATE EXTENSION hstore;
        CREATE TABLE public.attrs (id int PRIMARY KEY, h hstore);
        INSERT INTO public.attrs VALUES (1, 'a=>1, b=>"x y"'), (2, NULL);
        CREATE FUNCTION public.next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' $$;
        CREATE TABLE public.codes (id int, code text DEFAULT public.next_code());
        CREATE TABLE public.plain (id int);
        INSERT INTO public.plain VALUES (1), (2), (3);
    """)
    result = copy(cli, dbs, "public.attrs,public.codes,public.plain")
    assert result.returncode == 1
    errors = {e["table"]: e["error"] for e in result.events_of("table_failed")}
    assert set(errors) == {"public.attrs", "public.codes"}
    assert "CREATE EXTENSION hstore" in errors["public.attrs"]
    assert "function public.next_code() does not exist" in errors["public.codes"]
    assert "create it there first" in errors["public.codes"]
    assert dbs.target.scalar("SELECT count(*) FROM public.plain") == 3
    assert dbs.target.scalar("SELECT to_regclass('public.attrs')") is None
    # Once the target has what the tables need, they copy.
    dbs.target.execute("CREATE EXTENSION hstore; CREATE FUNCTION public.next_code() RETURNS "
                       "text LANGUAGE sql AS $$ SELECT 'c' $$")
    again = copy(cli, dbs, "public.attrs,public.codes")
    assert again.returncode == 0, again.stderr
    assert digests(dbs.target.dsn, ["public.attrs"]) == digests(dbs.source.dsn, ["public.attrs"])


def test_new_tables_get_source_grants_for_roles_the_target_has(cli, dbs):
    role_sql = ("DO $$ BEGIN CREATE ROLE {0}; EXCEPTION WHEN duplicate_object THEN NULL; "
                "END $$;")
    dbs.source.execute(role_sql.format("nc_analyst") + role_sql.format("nc_source_only") + """
        CREATE TABLE public.g (id int, secret text);
        GRANT SELECT ON public.g TO nc_analyst;
        GRANT SELECT (id) ON public.g TO nc_source_only;
        GRANT UPDATE (secret) ON public.g TO nc_analyst;""")
    dbs.target.execute(role_sql.format("nc_analyst") + "DROP ROLE IF EXISTS nc_source_only")
    result = copy(cli, dbs, "public.g")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT has_table_privilege('nc_analyst', 'public.g', 'SELECT')")
    assert dbs.target.scalar("SELECT has_column_privilege('nc_analyst', 'public.g', 'secret', "
                             "'UPDATE')")
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("nc_source_only" in w and "skipped" in w for w in warnings), warnings


def test_enum_values_added_on_the_source_reach_the_target(cli, dbs):
    dbs.source.execute("CREATE TYPE public.status AS ENUM ('new', 'paid');"
                       "CREATE TABLE public.o (id int, s public.status);"
                       "INSERT INTO public.o VALUES (1, 'new'), (2, 'paid')")
    assert copy(cli, dbs, "public.o").returncode == 0
    dbs.source.execute("ALTER TYPE public.status ADD VALUE 'refunded' BEFORE 'paid'")
    dbs.source.execute("INSERT INTO public.o VALUES (3, 'refunded')")
    result = copy(cli, dbs, "public.o")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT enumlabel FROM pg_enum WHERE enumtypid = "
                            "'public.status'::regtype ORDER BY enumsortorder") == \
        [("new",), ("refunded",), ("paid",)]
    assert dbs.target.query("SELECT id FROM public.o ORDER BY s, id") == [(1,), (3,), (2,)]


def test_a_target_view_that_cannot_follow_the_new_definition_keeps_the_old_table(cli, dbs):
    dbs.source.execute("CREATE TABLE public.m (id int, amount numeric);"
                       "INSERT INTO public.m VALUES (1, 10)")
    assert copy(cli, dbs, "public.m").returncode == 0
    dbs.target.execute("CREATE VIEW public.m_amounts AS SELECT id, amount FROM public.m")
    dbs.source.execute("ALTER TABLE public.m DROP COLUMN amount; INSERT INTO public.m VALUES (2)")
    before = digests(dbs.target.dsn, ["public.m"])
    result = copy(cli, dbs, "public.m")
    assert result.returncode == 1
    error = result.events_of("table_failed")[0]["error"]
    assert "view public.m_amounts cannot be re-created" in error and "amount" in error
    assert digests(dbs.target.dsn, ["public.m"]) == before
    assert dbs.target.scalar("SELECT count(*) FROM public.m_amounts") == 1


def test_inheritance_parent_is_copied_with_its_own_rows_only(cli, dbs):
    dbs.source.execute("CREATE TABLE public.animals (id int, name text);"
                       "CREATE TABLE public.cats (lives int) INHERITS (public.animals);"
                       "INSERT INTO public.animals VALUES (1, 'generic');"
                       "INSERT INTO public.cats VALUES (2, 'tom', 9)")
    result = copy(cli, dbs, "public.animals,public.cats", "--verify", "checksum")
    assert result.returncode == 0, result.stderr
    assert dbs.target.query("SELECT id, name FROM public.animals") == [(1, "generic")]
    assert dbs.target.query("SELECT id, name, lives FROM public.cats") == [(2, "tom", 9)]
    assert any("inherits from public.animals" in e["message"]
               for e in result.events_of("warning"))


def test_a_source_role_that_cannot_read_everything_is_refused_up_front(cli, dbs):
    dbs.source.execute("""
        DO $$ BEGIN CREATE ROLE nc_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL;
        END $$;
        CREATE TABLE public.p (id int) PARTITION BY RANGE (id);
        CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (10);
        GRANT SELECT ON public.p TO nc_reader;
        CREATE TABLE public.secretive (id int, owner_name text);
        ALTER TABLE public.secretive ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON public.secretive TO nc_reader;""")
    reader = psycopg2.extensions.make_dsn(dbs.source.dsn, user="nc_reader")
    partition = cli(["copy", "--source", reader, "--target", dbs.target.dsn, "--tables",
                     "public.p"])
    assert partition.returncode == 1
    assert "the source role may not read public.p1" in partition.stderr
    rls = cli(["copy", "--source", reader, "--target", dbs.target.dsn, "--tables",
               "public.secretive"])
    assert rls.returncode == 1
    assert "row-level security would hide rows of public.secretive" in rls.stderr
    assert dbs.target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'nightcopy'") == 0
