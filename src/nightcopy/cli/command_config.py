"""What the operator commands share: --config/--ssm-prefix, loading the configuration (and its
password sources), restating DSN hints, the target for ledger-only commands, JSON output."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from nightcopy.cli.dsn_warnings import warn_about_passwords_in_argv
from nightcopy.errors import ConfigError, NightcopyError

_config_options = [
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 metavar="FILE", envvar="NIGHTCOPY_CONFIG", show_envvar=True,
                 help="The config file to read (default: ./nightcopy.toml)."),
    click.option("--ssm-prefix", default=None, metavar="PREFIX",
                 help="Read the configuration from SSM parameters under PREFIX instead."),
]


def config_options(func):
    for option in reversed(_config_options):
        func = option(func)
    return func


def load_config(config_path: str | None, ssm_prefix: str | None):
    from nightcopy.cli.db_auth import install
    from nightcopy.ops import config_file

    config = config_file.load(config_path, ssm_prefix)
    install(config.options)  # source_auth / target_auth (run: its flags, in run_command)
    return config


@contextlib.contextmanager
def hints_from(config) -> Iterator[None]:
    """Connection errors inside name the config's own DSN key (where the value came from)."""
    from nightcopy.ops.dsn_origin import restated

    try:
        yield
    except NightcopyError as exc:
        raise restated(exc, config) from None


def target_dsn(target: str | None, config_path: str | None, ssm_prefix: str | None) -> str:
    """history/timings/plan only need the target: --target, else the config's."""
    if target:
        warn_about_passwords_in_argv(click.get_current_context(), {"target": (
            "--target", "NIGHTCOPY_TARGET_DSN", "PREFIX/target_dsn")})
        return target
    if not config_path and not ssm_prefix and not Path("nightcopy.toml").exists():
        raise ConfigError("no target database: pass --target (or set NIGHTCOPY_TARGET_DSN), "
                          "--config FILE or --ssm-prefix PREFIX")
    return load_config(config_path, ssm_prefix).target_dsn


def echo_json_dict(value: dict) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
