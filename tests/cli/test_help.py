"""Every `--help` read as a new user reads it, at 80 columns: nothing truncated, metavars that
say what a value is, environment variables shown, pg_dump's short letters for the common flags."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from nightcopy.cli.main import main

GENERIC_METAVARS = re.compile(r"\b(TEXT|INTEGER|FLOAT|RANGE|DIRECTORY|PATH|BOOLEAN)\b")


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_list_shows_every_description_whole():
    out = _help()
    commands = out[out.index("Commands:"):]
    assert "..." not in commands, commands
    for name, command in main.commands.items():
        # whole in the narrowest list click prints (80 columns, the longest command name)
        assert not command.get_short_help_str(limit=60).endswith("..."), name
        assert re.search(rf"^  {name} +\S", commands, re.M), name


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_says_what_its_value_is_and_which_variable_sets_it(name):
    out = _help(name)
    assert not GENERIC_METAVARS.search(out), out
    command = main.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            assert f"env var: {param.envvar}" in re.sub(r"\s+", " ", out), (param.name, out)
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} {param.opts[0]} has no help text"


def test_short_options_are_pg_dumps():
    assert "-t, --tables LIST" in _help("copy")
    for name in ("copy", "run", "plan"):
        assert "-j, --jobs N" in _help(name), name


def test_slack_flags_agree_between_run_and_validate():
    for name in ("run", "validate"):
        assert "--slack / --no-slack" in _help(name), name


def test_each_command_states_its_own_defaults():
    history = _help("history")
    options = history[history.index("Options:"):]
    assert "timings" not in options  # --days' default is history's own
    assert "--runs, --nights RUNS" in history
    assert "2 days" in _help("timings")
