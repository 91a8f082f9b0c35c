"""`nightcopy copy`'s command line: usage errors, environment, precedence."""

from __future__ import annotations


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
