"""The worker reading its configuration from SSM Parameter Store (moto in server mode, so the
real worker process talks to it over HTTP exactly as it talks to AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    boto3.client("ssm").delete_parameters(
        Names=[p["Name"] for p in boto3.client("ssm").describe_parameters()["Parameters"]] or ["x"])
    return env


def put(name: str, value: str, secure: bool = False) -> None:
    boto3.client("ssm").put_parameter(Name=name, Value=value, Overwrite=True,
                                      Type="SecureString" if secure else "String")


def test_group_tables_dsns_and_options_come_from_ssm(cli, dbs, aws_env):
    dbs.source.execute("CREATE SCHEMA sales; CREATE TABLE sales.a (id int);"
                       "CREATE TABLE sales.b (id int); CREATE TABLE public.c (id int);"
                       "INSERT INTO sales.a VALUES (1), (2)")
    put("/nightcopy/test/source_dsn", dbs.source.dsn, secure=True)
    put("/nightcopy/test/target_dsn", dbs.target.dsn, secure=True)
    put("/nightcopy/test/table_groups", json.dumps(
        [{"name": "sales", "tables": ["sales.*"]}, {"name": "rest", "tables": ["public.c"]}]))
    put("/nightcopy/test/options", json.dumps({"jobs": 3, "verify": "checksum"}))
    result = cli(["copy", "--ssm-prefix", "/nightcopy/test/", "--group", "sales"], env=aws_env)
    assert result.returncode == 0, result.stderr
    assert sorted(e["table"] for e in result.events_of("table_copied")) == ["sales.a", "sales.b"]
    started = result.events_of("run_started")[0]
    assert started["jobs"] == 3 and started["verify"] == "checksum" and started["group"] == "sales"
    # A flag beats the environment, which beats SSM options.
    flagged = cli(["copy", "--ssm-prefix", "/nightcopy/test", "--group", "rest", "--jobs", "1"],
                  env={**aws_env, "NIGHTCOPY_VERIFY": "count"})
    assert flagged.returncode == 0, flagged.stderr
    started = flagged.events_of("run_started")[0]
    assert started["jobs"] == 1 and started["verify"] == "count"


@pytest.mark.parametrize("setup, args, message", [
    ({}, ["--group", "g1"], "SSM parameter /nightcopy/test/source_dsn does not exist"),
    ({"table_groups": "[{\"name\": \"g1\", \"tables\": [\"a\"]"}, ["--group", "g1"],
     "table_groups is not valid JSON"),
    ({"table_groups": "{\"g1\": [\"a\"]}"}, ["--group", "g1"], "table_groups is empty or not a list"),
    ({"table_groups": "[[\"a\"], [\"b\"]]"}, ["--group", "g9"], "group 'g9' is not in table_groups"),
    ({"table_groups": "[{\"name\": \"g1\", \"tables\": []}]"}, ["--group", "g1"], "has no tables"),
    ({"table_groups": "[{\"name\": \"g1\", \"tables\": [42]}]"}, ["--group", "g1"],
     "table names must be strings"),
    ({"options": "{\"jobs\": \"many\"}", "table_groups": "[[\"a\"]]"}, ["--group", "g1"],
     "SSM parameter /nightcopy/test/options: option jobs must be a number from 1 to 64, not \"many\""),
    ({"options": "{\"colour\": 1}", "table_groups": "[[\"a\"]]"}, ["--group", "g1"],
     "unknown option 'colour'"),
])
def test_bad_ssm_configuration_is_a_clear_error(cli, dbs, aws_env, setup, args, message):
    if setup:
        put("/nightcopy/test/source_dsn", dbs.source.dsn, secure=True)
        put("/nightcopy/test/target_dsn", dbs.target.dsn, secure=True)
    for name, value in setup.items():
        put(f"/nightcopy/test/{name}", value)
    result = cli(["copy", "--ssm-prefix", "/nightcopy/test", *args], env=aws_env)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert dbs.target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'nightcopy'") == 0
