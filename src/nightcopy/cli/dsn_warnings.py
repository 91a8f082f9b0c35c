"""A warning for a password given on the command line (issue 12).

Any user of the machine can read another process's arguments (`ps`, /proc/PID/cmdline), so a
DSN flag holding a password leaks it for as long as the command runs. The value is still used
(refusing would break scripts without making them safer today); stderr gets one line per flag,
pointing to the places that are not visible: the NIGHTCOPY_*_DSN variable, ~/.pgpass, or the
SSM SecureString. The password itself is never printed.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from nightcopy.engine.connection import parse
from nightcopy.errors import ConfigError


def has_password(dsn: object) -> bool:
    """Whether a libpq DSN (URI or key=value) holds a password; a malformed one is refused
    later, with its own message, so it draws no warning here."""
    if not isinstance(dsn, str) or not dsn.strip():
        return False
    try:
        return bool(parse(dsn, "given").get("password"))  # parse() registers it as a secret
    except ConfigError:
        return False


def warn_about_passwords_in_argv(ctx: click.Context, flags: dict[str, tuple[str, str, str]]
                                 ) -> None:
    """flags: parameter name -> (the flag, its NIGHTCOPY_* variable, the SSM parameter). Warns
    only for values that came from the command line itself (not the environment)."""
    for name, (flag, envvar, ssm_name) in flags.items():
        if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        if has_password(ctx.params.get(name)):
            click.echo(f"nightcopy: warning: the {flag} DSN holds a password, which other users "
                       f"of this machine can read in the process list (ps): put the DSN in "
                       f"the environment ({envvar}), the password in ~/.pgpass (or PGPASSFILE), "
                       f"or the DSN in the SSM parameter {ssm_name}", err=True)
