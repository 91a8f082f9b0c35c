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


def test_a_dsn_from_the_config_file_is_named_as_the_file_names_it(cli, dbs, tmp_path):
    import json

    import psycopg2.extensions

    missing = psycopg2.extensions.make_dsn(dbs.source.dsn, dbname="no_such_db")
    config = tmp_path / "night.toml"
    config.write_text(f"source_dsn = {json.dumps(missing)}\n"
                      f"target_dsn = {json.dumps(dbs.target.dsn)}\n"
                      '[[groups]]\nname = "a"\ntables = ["public.t"]\n')
    from_file = cli(["copy", "--config", str(config), "--group", "a"])
    assert from_file.returncode == 1
    assert "the database does not exist; check source_dsn in config file" in from_file.stderr
    assert "--source" not in from_file.stderr
    from_flag = cli(["copy", "--config", str(config), "--group", "a", "--source", missing])
    assert "source_dsn in config file" not in from_flag.stderr
    assert "--source" in from_flag.stderr
