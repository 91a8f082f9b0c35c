"""A source role that cannot read every row is refused up front."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions


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
