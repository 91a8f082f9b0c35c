"""Group names and run ids (issue 12): [A-Za-z0-9_-]{1,80} wherever they are accepted, refused
with one line (exit 1: they are input, like --tables) before anything is read or connected to.

The report-path attacks through `nightcopy copy` are in tests/security; these are the other
places a name comes from. None of them needs a database: the check comes first.
"""

from __future__ import annotations

import json

import pytest

from nightcopy.cli.copy_command import options_from_argv
from nightcopy.engine.run_id import new_run_id
from nightcopy.engine.table_groups import parse_table_groups
from nightcopy.errors import ConfigError
from nightcopy.ops.config_file import load_file
from nightcopy.options import name_problem

# Names that must keep working: the starter's (nightly-YYYY-MM-DD-rN / -fN), nightcopy's own
# run ids, the demo's and ordinary group names, and the longest allowed.
FITTING = ["g1", "sales_eu-2", "nightly-2026-12-03-r2", "nightly-2026-12-03-f1",
           new_run_id(), new_run_id("local"), "x" * 80]
UNFIT = ["../../escaped", "..", "a/b", "a b", "", "x" * 81, "naïve", "a.b", "a\\b", "a\nb"]
_ARGV = ["--tables", "public.t", "--source", "host=nowhere", "--target", "host=nowhere"]


@pytest.mark.parametrize("name", FITTING)
def test_fitting_names_are_accepted(name):
    assert name_problem(name) is None
    options = options_from_argv([*_ARGV, "--group", name, "--run-id", name])
    assert (options.group, options.run_id) == (name, name)


@pytest.mark.parametrize("name", UNFIT)
@pytest.mark.parametrize("flag", ["--group", "--run-id"])
def test_unfit_flags_are_refused_naming_the_flag(flag, name):
    with pytest.raises(ConfigError, match=f"^{flag} \\(or NIGHTCOPY_") as info:
        options_from_argv([*_ARGV, flag, name])
    assert "letters, digits" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("variable", ["NIGHTCOPY_GROUP", "NIGHTCOPY_RUN_ID"])
def test_unfit_variables_are_refused(monkeypatch, variable):
    monkeypatch.setenv(variable, "../escaped")
    with pytest.raises(ConfigError, match=variable):
        options_from_argv(_ARGV)


def test_unfit_names_in_table_groups_are_refused_naming_each():
    groups = [{"name": "ok", "tables": ["public.a"]}, {"name": "../x", "tables": ["public.b"]},
              {"name": "a b", "tables": ["public.c"]}]
    with pytest.raises(ConfigError, match=r"'\.\./x', 'a b' must be 1 to 80 letters"):
        parse_table_groups(json.dumps(groups))
    # validate's reader keeps them, to name them among its other problems
    assert [g.name for g in parse_table_groups(groups, check_names=False)] == ["ok", "../x", "a b"]


def test_unfit_group_names_in_the_config_file_are_refused(tmp_path):
    path = tmp_path / "nightcopy.toml"
    path.write_text('source_dsn = "host=a"\ntarget_dsn = "host=b"\n'
                    '[[groups]]\nname = "../../escaped"\ntables = ["public.a"]\n')
    with pytest.raises(ConfigError, match=r"config file .*'\.\./\.\./escaped' must be"):
        load_file(path)
    assert load_file(path, check_group_names=False).groups[0].name == "../../escaped"


@pytest.mark.parametrize("args", [["--run-id", "../x"], ["--group", "../x"]])
def test_run_refuses_unfit_names_before_reading_the_config(cli, tmp_path, args):
    # No config file exists: the name is refused first.
    result = cli(["run", "--config", str(tmp_path / "missing.toml"), *args])
    assert result.returncode == 1, result.stderr
    assert f"{args[0]} must be 1 to 80 letters" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _ssm_groups(ssm, groups: list) -> None:
    for name, value in (("source_dsn", "host=nowhere"), ("target_dsn", "host=nowhere"),
                        ("table_groups", json.dumps(groups))):
        ssm.put_parameter(Name=f"/nc/names/{name}", Value=value, Type="String")


def test_ssm_table_groups_with_an_unfit_name_are_refused_by_the_worker(ssm):
    _ssm_groups(ssm, [{"name": "g1", "tables": ["public.a"]},
                      {"name": "../../escaped", "tables": ["public.b"]}])
    with pytest.raises(ConfigError, match=r"/nc/names/table_groups: group name "
                                          r"'\.\./\.\./escaped' must be"):
        options_from_argv(["--ssm-prefix", "/nc/names", "--group", "g1"])


def test_validate_names_an_unfit_ssm_group(ssm):
    from click.testing import CliRunner

    from nightcopy.cli.main import main

    _ssm_groups(ssm, [{"name": "a b", "tables": ["public.b"]}])
    result = CliRunner().invoke(main, ["validate", "--ssm-prefix", "/nc/names", "--no-slack"])
    assert result.exit_code == 1
    assert "problem: " in result.output and "'a b' must be 1 to 80 letters" in result.output
