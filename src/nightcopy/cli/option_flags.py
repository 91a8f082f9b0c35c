"""Click options derived from the option registry (nightcopy.options): one definition per
option, so `copy` and `run` cannot disagree on a name, a range, a default or a help text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from nightcopy.options import Option

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _click_type(option: Option[Any]) -> click.ParamType | None:
    if option.choices:
        return click.Choice(option.choices)
    if option.kind is int:
        return click.IntRange(None if option.low is None else int(option.low),
                              None if option.high is None else int(option.high))
    if option.kind is float:
        return click.FloatRange(option.low, option.high)
    return None


def copy_flag(option: Option[Any]) -> Decorator:
    """`nightcopy copy --flag`, also read from NIGHTCOPY_<NAME>. No click default: an unset flag
    must stay None so that NIGHTCOPY_* > SSM options > default can apply."""
    default = "" if option.default is None else f" [default: {option.default_text()}]"
    return click.option(option.flag, option.name, envvar=option.envvar, show_envvar=True,
                        type=_click_type(option), metavar=None if option.choices else option.metavar,
                        help=option.help.rstrip(".") + ("." if not default else "") + default)


def copy_flags(options: tuple[Option[Any], ...]) -> Decorator:
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = copy_flag(option)(func)
        return func
    return apply
