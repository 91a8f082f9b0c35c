"""A source role that may read the tables but not their sequences is refused up front, with the
GRANT to run (it used to fail the night as an internal error)."""

from __future__ import annotations

import os

import psycopg2.extensions
from click.testing import CliRunner

from nightcopy.cli.main import main


def test_a_sequence_the_source_role_may_not_read_is_named_with_its_grant(dbs, monkeypatch):
    for key in list(os.environ):
        if key.startswith("NIGHTCOPY_"):
            monkeypatch.delenv(key)
    role = f"seq_reader_{os.getpid()}"
    dbs.source.execute(f"""
        CREATE TABLE public.orders (id serial PRIMARY KEY, n int);
        INSERT INTO public.orders (n) VALUES (1), (2);
        CREATE ROLE {role} LOGIN;
        GRANT USAGE ON SCHEMA public TO {role};
        GRANT SELECT ON public.orders TO {role};""")
    try:
        source = psycopg2.extensions.make_dsn(dbs.source.dsn, user=role)
        r = CliRunner().invoke(main, ["copy", "--source", source, "--target", dbs.target.dsn,
                                      "-t", "public.orders"])
        assert r.exit_code == 1, r.output
        assert ("the source role may not read sequence public.orders_id_seq" in r.stderr)
        assert "GRANT SELECT ON SEQUENCE public.orders_id_seq TO" in r.stderr
        assert "internal error" not in r.stderr
        assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1, r.stderr
        assert dbs.target.scalar("SELECT to_regclass('public.orders') IS NULL")
    finally:
        dbs.source.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
