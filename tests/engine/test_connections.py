"""Connections: unreachable hosts, bad DSNs, the same database twice."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from tests.pgutil import connect


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


def test_connect_helper_settings_match(dbs):
    # The text settings used for checksums are applied identically on both sides.
    a, b = connect(dbs.source.dsn), connect(dbs.target.dsn)
    for setting in ("DateStyle", "IntervalStyle", "extra_float_digits", "TimeZone"):
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute(f"SHOW {setting}")
            cb.execute(f"SHOW {setting}")
            assert ca.fetchone() == cb.fetchone()
