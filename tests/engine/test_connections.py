"""Connections: unreachable hosts, bad DSNs, the same database twice."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from tests.pgutil import digests


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


def test_text_copies_are_identical_whatever_each_servers_settings(copy, dbs):
    """Text-format values (dates, intervals, floats, money, bytea, time zones) depend on session
    settings; nightcopy sets the same ones on both sides, so databases configured differently
    still get every value exactly. (A composite column makes the table go as text.)"""
    src_db = dbs.source.scalar("SELECT current_database()")
    tgt_db = dbs.target.scalar("SELECT current_database()")
    dbs.source.execute(f"""
        ALTER DATABASE "{src_db}" SET DateStyle = 'SQL, DMY';
        ALTER DATABASE "{src_db}" SET IntervalStyle = 'sql_standard';
        ALTER DATABASE "{src_db}" SET TimeZone = 'Pacific/Auckland';
        ALTER DATABASE "{src_db}" SET extra_float_digits = -3;
        ALTER DATABASE "{src_db}" SET bytea_output = 'escape';""")
    dbs.target.execute(f"""
        ALTER DATABASE "{tgt_db}" SET DateStyle = 'German, MDY';
        ALTER DATABASE "{tgt_db}" SET IntervalStyle = 'postgres_verbose';
        ALTER DATABASE "{tgt_db}" SET TimeZone = 'America/St_Johns';
        ALTER DATABASE "{tgt_db}" SET extra_float_digits = 0;""")
    dbs.source.execute("""
        CREATE TYPE public.pair AS (a int, b text);
        CREATE TABLE public.values_ (id int, p public.pair, d date, ts timestamptz,
                                     i interval, f float8, m money, b bytea);
        INSERT INTO public.values_ VALUES
            (1, (1, 'x'), '2026-03-04', '2026-03-04 05:06:07.123456+13', '1 year 2 mons 3 days
             04:05:06.789', 0.1::float8 + 0.2::float8, 12.34, '\\x00ff10'),
            (2, (2, 'y'), '1999-12-31', '1999-12-31 23:59:59+00', '-3 days', 1e-300, -0.5, '')""")
    result = copy("public.values_")
    assert result.returncode == 0, result.stderr
    assert result.events_of("table_copied")[0]["format"] == "text"
    # Compared in one session per side with the same settings (tests.pgutil.connect).
    assert digests(dbs.target.dsn, ["public.values_"]) == \
        digests(dbs.source.dsn, ["public.values_"])
    # Every bit of the float, not its rounded text (the target shows 0.3 with its settings).
    assert dbs.target.scalar("SELECT f = 0.1::float8 + 0.2::float8 FROM public.values_ "
                             "WHERE id = 1") is True


def test_pg_variables_and_pgpass_fill_what_a_dsn_leaves_out(cli, dbs, tmp_path):
    """libpq's defaults: PGHOST/PGPORT/PGDATABASE/PGUSER for the fields a DSN leaves out, and a
    password from the .pgpass file (PGPASSFILE), never printed."""
    dbs.source.execute("CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1)")
    params = psycopg2.extensions.parse_dsn(dbs.target.dsn)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:*:PassFromFile-5521\n")
    pgpass.chmod(0o600)
    env = {"PGHOST": params["host"], "PGPORT": params.get("port", "5432"),
           "PGDATABASE": params["dbname"], "PGUSER": params.get("user", ""),
           "PGPASSFILE": str(pgpass)}
    # An empty URI: host, port, database, user and password all come from libpq's defaults.
    result = cli(["copy", "--source", dbs.source.dsn, "--target", "postgresql://", "--tables",
                  "public.t"],
                 env={k: v for k, v in env.items() if v})
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM public.t") == 1
    # Only the database named in the environment was written.
    assert "PassFromFile-5521" not in result.stdout + result.stderr
