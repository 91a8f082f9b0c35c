"""RDS IAM database authentication (source_auth / target_auth = rds-iam), with real parts: the
token is botocore's own (a SigV4-presigned request made offline from moto's credentials), and
the server checks it as the connection's password (pg_hba `password` for one role), for every
connection of a real copy. There is no RDS endpoint here, so the token is made for an RDS host
name while libpq connects to the local server's socket."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from nightcopy.aws.rds_iam import region_of, token_source
from nightcopy.engine.connection import use_password_source
from nightcopy.engine.events import EventWriter
from nightcopy.engine.invocation import CopyOptions, copy_tables
from nightcopy.errors import ConfigError

RDS_HOST = "shop.abc123xyz.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def iam_role(dbs, aws_env) -> Iterator[str]:
    """A source role whose login is checked against a password (pg_hba), set to each token."""
    role = f"iam_reader_{os.getpid()}"
    dbs.source.execute(f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public TO {role}; "
                       "CREATE TABLE public.t (id int PRIMARY KEY); "
                       "INSERT INTO public.t SELECT generate_series(1, 100); "
                       f"GRANT SELECT ON public.t TO {role}")
    hba = Path(dbs.source.scalar("SHOW hba_file"))
    original = hba.read_text()
    hba.write_text(f"local all {role} password\n" + original)
    dbs.source.execute("SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        hba.write_text(original)
        dbs.source.execute("SELECT pg_reload_conf()")
        use_password_source("source", None)
        dbs.source.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_every_connection_logs_in_with_a_fresh_token(dbs, iam_role):
    made: list[str] = []
    real = token_source("source")

    def token_for_the_rds_host(params: dict[str, str]) -> str:
        token = real({**params, "host": RDS_HOST, "port": "5432"})
        made.append(token)
        admin = psycopg2.connect(dbs.source.dsn)
        admin.autocommit = True
        with admin.cursor() as cur:  # the server now takes exactly this token, no other
            cur.execute(f"ALTER ROLE {iam_role} PASSWORD %s", (token,))
        admin.close()
        return token

    use_password_source("source", token_for_the_rds_host)
    source = psycopg2.extensions.make_dsn(dbs.source.dsn, user=iam_role)
    out, err = io.StringIO(), io.StringIO()
    result = copy_tables(CopyOptions(source_dsn=source, target_dsn=dbs.target.dsn,
                                     tables="public.t", jobs=2), EventWriter("iam", None, out, err))
    assert result.ok, err.getvalue()
    assert dbs.target.scalar("SELECT count(*) FROM public.t") == 100
    assert len(made) >= 2  # the snapshot's session and the worker's: a token each
    token = made[0]
    assert f"{RDS_HOST}:5432/?Action=connect&DBUser={iam_role}" in token
    assert "X-Amz-Signature=" in token and "X-Amz-Credential=" in token
    assert not any(t in out.getvalue() + err.getvalue() for t in made)


def test_without_the_token_the_login_fails(dbs, iam_role):
    source = psycopg2.extensions.make_dsn(dbs.source.dsn, user=iam_role)
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(source).close()


def test_the_token_source_refuses_what_rds_cannot_take(aws_env):
    source = token_source("source")
    with pytest.raises(ConfigError, match="must name the host and the user"):
        source({"host": "/tmp/socket", "user": "u"})
    with pytest.raises(ConfigError, match="only over TLS"):
        source({"host": RDS_HOST, "user": "u", "sslmode": "disable"})
    assert region_of(RDS_HOST) == "eu-west-1"
    assert region_of("cluster-x.cluster-ro-abc.cn-north-1.rds.amazonaws.com.cn") == "cn-north-1"


def test_copy_source_auth_rds_iam_reaches_the_worker(cli, dbs):
    """Through the real command line: with --source-auth rds-iam the worker asks for a token
    (a socket DSN names no RDS endpoint: the one-line refusal proves it was asked)."""
    result = cli(["copy", "--source-auth", "rds-iam", "-t", "public.t", "--source",
                  dbs.source.dsn, "--target", dbs.target.dsn])
    assert result.returncode == 1
    assert "source_auth rds-iam: the source DSN must name the host and the user" in \
        result.stderr
    assert "Traceback" not in result.stderr
