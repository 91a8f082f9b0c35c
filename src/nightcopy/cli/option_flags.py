"""Click options derived from the option registry (nightcopy.options): one definition per
option, so `copy` and `run` cannot disagree on a name, a range, a default or a help text.

Values are checked by the registry's own `Option.parse`, the same function that checks the
config file's [options] and SSM options, so a value is valid or not in the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from nightcopy.errors import ConfigError
from nightcopy.options import Option, name_problem

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class RegistryType(click.ParamType):
    """A click type that validates with the registry (a bad value is a usage error, exit 2)."""

    def __init__(self, option: Option[Any]) -> None:
        self.option = option
        self.name = option.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        try:
            return self.option.parse(value)
        except ValueError as exc:
            self.fail(f"{exc}, not {value!r}", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self.option.metavar


def _type(option: Option[Any]) -> click.ParamType | None:
    # Free-form strings (tables, DSNs, group names, run ids, ...) are input, not usage: they are
    # checked after parsing (exit 1, like a malformed --tables), where the same check covers the
    # value's other origins (NIGHTCOPY_*, SSM table_groups, the config file).
    if option.kind is bool:
        return None  # a --name/--no-name pair: click's own boolean (also for NIGHTCOPY_*)
    return RegistryType(option) if option.kind is not str or option.choices else None


def check_name_flag(option: Option[Any], value: object, *, envvar: bool = True) -> str:
    """A group name or run id given as a flag (or its NIGHTCOPY_* variable), checked with the
    registry's pattern: ConfigError (exit 1) naming the flag (and the variable, if it has one)."""
    problem = name_problem(value)
    if problem is not None:
        where = f"{option.flag} (or {option.envvar})" if envvar else option.flag
        raise ConfigError(f"{where} {problem}: group names and run ids become report paths and "
                          "execution names")
    return str(value)


def copy_flag(option: Option[Any]) -> Decorator:
    """`nightcopy copy --flag`, also read from NIGHTCOPY_<NAME>. No click default: an unset flag
    must stay None so that NIGHTCOPY_* > SSM options > default can apply."""
    default = "" if option.default is None else f" [default: {option.default_text()}]"
    return click.option(*_names(option), option.name, envvar=option.envvar, show_envvar=True,
                        type=_type(option), metavar=option.metavar, default=None,
                        help=option.help.rstrip(".") + ("." if not default else "") + default)


def _names(option: Option[Any]) -> tuple[str, ...]:
    return (option.short, option.flag) if option.short else (option.flag,)


def run_flag(option: Option[Any], *, default_text: str | None = None) -> Decorator:
    """`nightcopy run --flag` for an option it resolves once and passes on to every worker as a
    flag. It reads the worker's own NIGHTCOPY_<NAME> too (with the worker's precedence: flag >
    variable > the configuration's options > default), since `run` does not hand the operator's
    NIGHTCOPY_* variables to its workers."""
    default = default_text or f"options.{option.name}, else {option.default_text()}"
    worker = f"the worker's {option.flag}; " if option.worker else ""
    return click.option(*_names(option), option.name, envvar=option.envvar, show_envvar=True,
                        type=_type(option), metavar=option.metavar, default=None,
                        help=f"{option.help.rstrip('.')} ({worker}default: {default}).")


def flags(make: Callable[[Option[Any]], Decorator], options: tuple[Option[Any], ...]
          ) -> Decorator:
    """Apply one click option per registry option, in registry order."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = make(option)(func)
        return func
    return apply
