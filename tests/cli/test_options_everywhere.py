"""Every option of the registry (nightcopy.options) through every place a user can set it.

The places: `nightcopy copy --flag`, its NIGHTCOPY_<NAME> variable, `nightcopy run --flag`, the
config file's [options], SSM PREFIX/options (moto) read by `copy --ssm-prefix` and by
`run --ssm-prefix`. An accepted value must reach the worker unchanged (the CopyOptions the
worker resolves; for `run`, from the very argv it would start the worker with); a refused one
must be refused with the same message everywhere. Most checks stop after option resolution; two
tests copy for real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import click
import pytest
from click.testing import CliRunner
from moto import mock_aws

from nightcopy.cli.copy_command import options_from_argv
from nightcopy.cli.main import main
from nightcopy.cli.run_command import run_command, run_settings
from nightcopy.engine.invocation import CopyOptions
from nightcopy.engine.invocation_report import FileReportWriter
from nightcopy.errors import ConfigError
from nightcopy.ops import config_file
from nightcopy.ops.local_run import GroupState, worker_command, worker_env
from nightcopy.options import BY_NAME, REGISTRY, WORKER_OPTIONS, Place, markdown_table

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/nc/options-test"
SRC, TGT = "host=/nonexistent/src dbname=src", "host=/nonexistent/tgt dbname=tgt"
IDENTITY = [o.name for o in REGISTRY if Place.CONFIG not in o.places]

# For every option: a valid value other than its default, and an invalid one (identity options
# have no invalid value of their own: any value is refused in the configs' options).
VALID: dict[str, Any] = {
    "tables": "public.t1, public.t2", "group": "g7", "source_dsn": "host=/tmp/a dbname=a",
    "target_dsn": "host=/tmp/b dbname=b", "ssm_prefix": PREFIX, "run_id": "night-42",
    "report_uri": "file:///tmp/nightcopy-reports", "jobs": 5, "strategy": "truncate",
    "verify": "checksum", "retries": 3, "lock_timeout": 0.25, "lock_attempts": 9, "parallel": 3,
    "trust": "app.ok, util.*", "adopt": True, "create_extensions": False,
    "swap_scope": "group", "cancel_blockers_after": 30.0, "shrink_guard": 80.0,
    "shrink_guard_min_rows": 10, "allow_shrink": "public.orders, sales.*",
    "mask_key": "a-mask-key-of-24-chars!!", "sensitive_column_patterns": "*card*, *tax_id*",
    "exclude_table": "*.tmp_*, public.scratch", "schema": "sales", "config": "night.toml",
    "source_auth": "rds-iam", "target_auth": "rds-iam",
}
INVALID: dict[str, Any] = {"jobs": 100, "strategy": "fast", "verify": "rows", "retries": 11,
                           "lock_timeout": 0, "lock_attempts": 0, "parallel": 0,
                           "adopt": "maybe", "create_extensions": "maybe",
                           "swap_scope": "all", "cancel_blockers_after": 0,
                           "shrink_guard": 101, "shrink_guard_min_rows": -1,
                           "source_auth": "kerberos", "target_auth": "iam"}
BASE_COPY_ARGS = ["--tables", "public.t", "--source", SRC, "--target", TGT]


def test_every_option_has_test_values():
    assert set(VALID) == {o.name for o in REGISTRY}
    assert set(INVALID) == {o.name for o in REGISTRY if o.kind is not str or o.choices}
    for name, value in VALID.items():
        assert value != BY_NAME[name].default, name


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("NIGHTCOPY_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture
def ssm(clean_env):
    """moto's SSM with a complete configuration under PREFIX; returns put_options(dict)."""
    for key, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        clean_env.setenv(key, value)
    clean_env.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("ssm")
        for name, value in (("source_dsn", SRC), ("target_dsn", TGT)):
            client.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type="SecureString")
        client.put_parameter(Name=f"{PREFIX}/table_groups", Type="String",
                             Value=json.dumps([{"name": "g1", "tables": ["public.t"]}]))

        def put_options(options: dict) -> None:
            client.put_parameter(Name=f"{PREFIX}/options", Type="String", Overwrite=True,
                                 Value=json.dumps(options))
        yield put_options


def write_config(tmp_path: Path, options: dict | None = None, source: str = SRC,
                 target: str = TGT, tables: tuple[str, ...] = ("public.t",)) -> Path:
    lines = [f"source_dsn = {json.dumps(source)}", f"target_dsn = {json.dumps(target)}"]
    if options is not None:
        lines += ["[options]"] + [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    lines += ["[[groups]]", 'name = "g1"', f"tables = {json.dumps(list(tables))}"]
    path = tmp_path / "nightcopy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_sees(argv: list[str], monkeypatch) -> CopyOptions:
    """What the worker `run` would start resolves: its argv and the environment run gives it."""
    import os

    env = worker_env(SRC, TGT)
    for key in [k for k in os.environ if k.startswith("NIGHTCOPY_") and k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("NIGHTCOPY_"):
            monkeypatch.setenv(key, value)
    assert argv[1:4] == ["-m", "nightcopy", "copy"]
    return options_from_argv(argv[4:])


def through_run(config, run_args: list[str], monkeypatch, tmp_path) -> tuple[CopyOptions, Any]:
    """`nightcopy run RUN_ARGS` up to the worker: run's own parsing and resolution, the argv it
    builds, then that argv parsed and resolved by the worker."""
    with run_command.make_context("run", list(run_args)) as ctx:
        given = {o.name: ctx.params[o.name] for o in REGISTRY if Place.RUN in o.places}
    options, parallel = run_settings(config, given)
    argv = worker_command(GroupState("g1", ["public.t"]), "r1", tmp_path, options)
    assert "--parallel" not in argv  # run's own option
    return worker_sees(argv, monkeypatch), parallel


def value_of(opts: CopyOptions, name: str) -> Any:
    if name == "report_uri":  # the worker keeps the writer it built from the URI
        writer = opts.report_writer
        return writer.directory.as_uri() if isinstance(writer, FileReportWriter) else writer
    return getattr(opts, name)


def without(args: list[str], flag: str) -> list[str]:
    if flag not in args:
        return list(args)
    i = args.index(flag)
    return args[:i] + args[i + 2:]


# ------------------------------------------------------------------------------- accepted

@pytest.mark.parametrize("name", [o.name for o in REGISTRY if Place.COPY in o.places
                                  and o.name not in ("ssm_prefix", "config")])
def test_copy_flag_and_variable(name, clean_env):
    """(--ssm-prefix and --config say where options come from: tests of their own below.)"""
    option = BY_NAME[name]
    args = without(BASE_COPY_ARGS, option.flag)
    assert value_of(options_from_argv([*args, *option.to_argv(VALID[name])]), name) == VALID[name]
    clean_env.setenv(option.envvar, option.to_arg(VALID[name]))
    assert value_of(options_from_argv(args), name) == VALID[name]


@pytest.mark.parametrize("name", [o.name for o in WORKER_OPTIONS])
def test_worker_option_in_ssm_options_for_copy_and_run(name, ssm, monkeypatch, tmp_path):
    ssm({name: VALID[name]})
    opts = options_from_argv(["--ssm-prefix", PREFIX, "--group", "g1"])
    assert value_of(opts, name) == VALID[name]
    assert (opts.source_dsn, opts.target_dsn, opts.tables) == (SRC, TGT, ["public.t"])
    config = config_file.load(None, PREFIX)
    assert value_of(through_run(config, ["--ssm-prefix", PREFIX], monkeypatch, tmp_path)[0],
                    name) == VALID[name]


@pytest.mark.parametrize("name", [o.name for o in WORKER_OPTIONS])
def test_worker_option_as_run_flag_and_in_the_config_file(name, clean_env, tmp_path):
    option = BY_NAME[name]
    path = write_config(tmp_path)
    opts, _ = through_run(config_file.load_file(path), ["--config", str(path),
                                                        *option.to_argv(VALID[name])],
                          clean_env, tmp_path)
    assert value_of(opts, name) == VALID[name]
    path = write_config(tmp_path, {name: VALID[name]})
    opts, _ = through_run(config_file.load_file(path), ["--config", str(path)], clean_env,
                          tmp_path)
    assert value_of(opts, name) == VALID[name]
    # run reads the worker's own variable too (and does not pass it on behind its back)
    clean_env.setenv(option.envvar, option.to_arg(VALID[name]))
    opts, _ = through_run(config_file.load_file(write_config(tmp_path)),
                          ["--config", str(path)], clean_env, tmp_path)
    assert value_of(opts, name) == VALID[name]
    assert option.envvar not in worker_env(SRC, TGT)


def test_precedence_everywhere(ssm, clean_env, tmp_path):
    """copy: flag > NIGHTCOPY_* > SSM options > default; run: flag > NIGHTCOPY_* > options."""
    ssm({"jobs": 3, "strategy": "truncate", "verify": "checksum"})
    clean_env.setenv("NIGHTCOPY_JOBS", "4")
    clean_env.setenv("NIGHTCOPY_STRATEGY", "swap")
    opts = options_from_argv(["--ssm-prefix", PREFIX, "--group", "g1", "--jobs", "5"])
    assert (opts.jobs, opts.strategy, opts.verify, opts.retries) == (5, "swap", "checksum", 1)
    config = config_file.load(None, PREFIX)
    opts, _ = through_run(config, ["--ssm-prefix", PREFIX, "--jobs", "5"], clean_env, tmp_path)
    assert (opts.jobs, opts.strategy, opts.verify, opts.retries) == (5, "swap", "checksum", 1)


def test_copy_reads_a_config_file_only_when_told(ssm, clean_env, tmp_path):
    """copy: flag > NIGHTCOPY_* > --config file > SSM options > default; the file gives the
    DSNs and the group's tables too, and a nightcopy.toml in the working directory is never
    read without --config (CodeBuild's working directory is the repository)."""
    ssm({"jobs": 3, "strategy": "truncate", "verify": "checksum", "retries": 4})
    path = tmp_path / "night.toml"
    path.write_text('source_dsn = "host=/f/src dbname=fs"\ntarget_dsn = "host=/f/tgt dbname=ft"\n'
                    '[options]\njobs = 7\nstrategy = "swap"\nverify = "count"\n'
                    '[[groups]]\nname = "g1"\ntables = ["sales.*"]\n')
    clean_env.setenv("NIGHTCOPY_VERIFY", "checksum")
    opts = options_from_argv(["--config", str(path), "--ssm-prefix", PREFIX, "--group", "g1",
                              "--jobs", "5"])
    assert (opts.jobs, opts.strategy, opts.verify, opts.retries) == (5, "swap", "checksum", 4)
    assert (opts.source_dsn, opts.target_dsn, opts.tables) == (
        "host=/f/src dbname=fs", "host=/f/tgt dbname=ft", ["sales.*"])
    clean_env.setenv("NIGHTCOPY_CONFIG", str(path))
    clean_env.delenv("NIGHTCOPY_VERIFY")
    opts = options_from_argv(["--group", "g1", "--source", SRC])
    assert (opts.jobs, opts.verify, opts.source_dsn, opts.tables) == (7, "count", SRC,
                                                                      ["sales.*"])
    # Not told: a nightcopy.toml in the working directory is not read.
    clean_env.delenv("NIGHTCOPY_CONFIG")
    (tmp_path / "nightcopy.toml").write_text(path.read_text())
    clean_env.chdir(tmp_path)
    assert options_from_argv(BASE_COPY_ARGS).jobs == 2
    with pytest.raises(ConfigError, match="no source database"):
        options_from_argv(["--tables", "public.t"])
    # run hands its workers no NIGHTCOPY_CONFIG: they get every setting as flags.
    clean_env.setenv("NIGHTCOPY_CONFIG", str(path))
    assert "NIGHTCOPY_CONFIG" not in worker_env(SRC, TGT)


def test_parallel_is_runs_own_option(ssm, clean_env, tmp_path):
    ssm({"parallel": 2, "jobs": 3})
    # The worker accepts it in SSM options and ignores it (it used to fail as unknown).
    assert options_from_argv(["--ssm-prefix", PREFIX, "--group", "g1"]).jobs == 3
    assert through_run(config_file.load(None, PREFIX), ["--ssm-prefix", PREFIX], clean_env,
                       tmp_path)[1] == 2
    path = write_config(tmp_path, {"parallel": 4})
    assert through_run(config_file.load_file(path), ["--config", str(path)], clean_env,
                       tmp_path)[1] == 4
    assert through_run(config_file.load_file(path), ["--config", str(path), "--parallel", "3"],
                       clean_env, tmp_path)[1] == 3
    with pytest.raises(click.UsageError, match="No such option"):
        options_from_argv([*BASE_COPY_ARGS, "--parallel", "2"])


def test_parallel_in_ssm_options_does_not_fail_the_aws_worker(ssm):
    """Through the real `nightcopy copy` command line only: on the code before the registry the
    worker failed with "unknown option 'parallel'" although `nightcopy run` accepted it."""
    ssm({"parallel": 2})
    result = CliRunner().invoke(main, ["copy", "--ssm-prefix", PREFIX, "--group", "g1"])
    assert result.exit_code == 1
    assert "parallel" not in result.stderr
    assert "source database" in result.stderr  # got past the options to the (absent) server


# ------------------------------------------------------------------------------- refused

def _refusals(name: str, value: Any, ssm, tmp_path) -> dict[str, str]:
    """The message each config place gives for `name = value`, without its origin."""
    out = {}
    with pytest.raises(ConfigError) as info:
        config_file.load_file(write_config(tmp_path, {name: value}))
    origin = f"config file {tmp_path / 'nightcopy.toml'}: "
    assert str(info.value).startswith(origin)
    out["config file"] = str(info.value).removeprefix(origin)
    ssm({name: value})
    origin = f"SSM parameter {PREFIX}/options: "
    for where, read in (("run/validate/plan --ssm-prefix", lambda: config_file.load(None, PREFIX)),
                        ("copy --ssm-prefix", lambda: options_from_argv(
                            ["--ssm-prefix", PREFIX, "--group", "g1"]))):
        with pytest.raises(ConfigError) as info:
            read()
        assert str(info.value).startswith(origin), str(info.value)
        out[where] = str(info.value).removeprefix(origin)
    return out


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_is_refused_with_one_message_everywhere(name, ssm, clean_env, tmp_path):
    option = BY_NAME[name]
    messages = _refusals(name, INVALID[name], ssm, tmp_path)
    expected = f"option {name} must be {option.describe()}, not {json.dumps(INVALID[name])}"
    assert set(messages.values()) == {expected}, messages
    # Flags: a usage error with the same "must be ..." from the same check, `run` included.
    if option.kind is bool:
        return  # a --name/--no-name pair takes no value (click checks its NIGHTCOPY_* words)
    flag_places = [("run", ["run", "--config", str(write_config(tmp_path))])]
    if Place.COPY in option.places:
        flag_places.append(("copy", ["copy", *BASE_COPY_ARGS]))
    for _, args in flag_places:
        result = CliRunner().invoke(main, [*args, option.flag, str(INVALID[name])])
        assert result.exit_code == 2, result.output
        assert f"must be {option.describe()}" in result.stderr and option.flag in result.stderr
    if Place.COPY in option.places:  # ... and from the worker's NIGHTCOPY_* variable
        clean_env.setenv(option.envvar, str(INVALID[name]))
        with pytest.raises(click.BadParameter, match=f"must be {option.describe()}"):
            options_from_argv(BASE_COPY_ARGS)


@pytest.mark.parametrize("name", IDENTITY)
def test_identity_options_are_refused_in_the_configs_options(name, ssm, tmp_path):
    option = BY_NAME[name]
    messages = _refusals(name, VALID[name], ssm, tmp_path)
    assert set(messages.values()) == {f"option {name} cannot be set in options: {option.belongs}"}
    assert all(str(VALID[name]) not in m for m in messages.values())  # it may be a DSN
    assert Place.RUN not in option.places


def test_unknown_option_is_one_message_everywhere(ssm, tmp_path):
    messages = _refusals("paralel", 2, ssm, tmp_path)
    assert len(set(messages.values())) == 1
    assert ("unknown option 'paralel' (known: adopt, allow_shrink, cancel_blockers_after, "
            "create_extensions, exclude_table, "
            "jobs, lock_attempts, lock_timeout, parallel") in messages["config file"]


def test_run_jobs_out_of_range_is_runs_own_usage_error(tmp_path, clean_env):
    """`run --jobs 100` used to pass `run` and fail in every worker."""
    result = CliRunner().invoke(main, ["run", "--config", str(write_config(tmp_path)), "--jobs",
                                       "100"])
    assert result.exit_code == 2
    assert "--jobs" in result.stderr and "must be a number from 1 to 64, not '100'" in \
        result.stderr


# --------------------------------------------------------------------------- real copies

def test_every_worker_option_from_the_config_file_reaches_real_workers(dbs, tmp_path,
                                                                       clean_env):
    dbs.source.execute("CREATE TABLE public.t (id int PRIMARY KEY);"
                       "INSERT INTO public.t SELECT generate_series(1, 50)")
    # (rds-iam needs an RDS endpoint: tests/aws/test_rds_iam.py has its real-parts test)
    worker = {o.name: VALID[o.name] for o in WORKER_OPTIONS if not o.name.endswith("_auth")}
    path = write_config(tmp_path, {**worker, "parallel": 1}, source=dbs.source.dsn,
                        target=dbs.target.dsn)
    result = CliRunner().invoke(main, ["run", "--config", str(path), "--run-id", "opts-1",
                                       "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output
    assert dbs.target.scalar("SELECT count(*) FROM public.t") == 50
    assert dbs.target.scalar("SELECT options FROM nightcopy.runs WHERE run_id = 'opts-1'") == {
        "jobs": 5, "strategy": "truncate", "verify": "checksum", "tables": 1}


def test_every_worker_option_from_ssm_reaches_a_real_copy(dbs, ssm):
    dbs.source.execute("CREATE TABLE public.t (id int PRIMARY KEY);"
                       "INSERT INTO public.t SELECT generate_series(1, 50)")
    client = boto3.client("ssm")
    for name, dsn in (("source_dsn", dbs.source.dsn), ("target_dsn", dbs.target.dsn)):
        client.put_parameter(Name=f"{PREFIX}/{name}", Value=dsn, Type="SecureString",
                             Overwrite=True)
    ssm({**{o.name: VALID[o.name] for o in WORKER_OPTIONS if not o.name.endswith("_auth")},
         "parallel": 2})
    result = CliRunner().invoke(main, ["copy", "--ssm-prefix", PREFIX, "--group", "g1"])
    assert result.exit_code == 0, result.output
    started = [json.loads(line) for line in result.stdout.splitlines()
               if '"run_started"' in line][0]
    assert (started["jobs"], started["strategy"], started["verify"]) == (5, "truncate",
                                                                          "checksum")


# --------------------------------------------------------------------------------- docs

def test_readme_lists_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate: python -c 'import nightcopy.options as o; " \
                                       "print(o.markdown_table())'"


def test_config_file_doc_names_every_settable_option():
    doc = (ROOT / "docs" / "operating.md").read_text()
    section = doc[doc.index("## The configuration file"):doc.index("## Check a configuration")]
    example = section[section.index("\n[options]"):section.index("\n[slack]")]
    for option in REGISTRY:
        assert (f"\n{option.name} = " in example) == (Place.CONFIG in option.places), option.name
        if Place.CONFIG not in option.places:
            assert f"`{option.name}`" in section, option.name  # listed as refused


@pytest.mark.parametrize("option_name, raw, parsed", [
    ("jobs", "4", 4), ("jobs", 4.0, 4), ("jobs", " 7 ", 7), ("lock_timeout", "0.5", 0.5),
    ("lock_timeout", 3, 3.0), ("strategy", "truncate", "truncate"),
    ("create_extensions", False, False), ("create_extensions", " Off ", False),
    ("create_extensions", "true", True),
])
def test_one_parser_for_strings_and_config_values(option_name, raw, parsed):
    value = BY_NAME[option_name].parse(raw)
    assert value == parsed and type(value) is type(parsed)


@pytest.mark.parametrize("option_name, raw, problem", [
    ("jobs", 2.5, "must be a number from 1 to 64 (a whole number)"),
    ("jobs", True, "must be a number from 1 to 64"), ("jobs", "many", "must be a number"),
    ("lock_timeout", "nan", "must be a number from 0.001 to 3600"),
    ("lock_timeout", "inf", "must be a number from 0.001 to 3600"),
    ("parallel", "inf", "must be a number of at least 1"),  # no upper bound: still finite
    ("strategy", "Swap", "must be one of swap, truncate"), ("verify", 1, "must be one of"),
    ("create_extensions", 1, "must be true or false"),
    ("create_extensions", "maybe", "must be true or false"),
])
def test_one_parser_refuses_the_same_way(option_name, raw, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        BY_NAME[option_name].parse(raw)


def test_run_hands_its_workers_no_option_variable_but_the_dsns(clean_env):
    for option in REGISTRY:
        clean_env.setenv(option.envvar, "from-the-operator")
    clean_env.setenv("NIGHTCOPY_DEBUG", "1")
    env = worker_env(SRC, TGT)
    assert {k: v for k, v in env.items() if k.startswith("NIGHTCOPY_")} == {
        "NIGHTCOPY_SOURCE_DSN": SRC, "NIGHTCOPY_TARGET_DSN": TGT, "NIGHTCOPY_DEBUG": "1"}
