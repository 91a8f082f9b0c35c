"""The `nightcopy` command line: a thin layer over the library.

Exit status: 0 success, 1 any failure (a short message on stderr, never a traceback),
2 what the argument parser rejects (click's usage errors).
"""

from __future__ import annotations

import os
import sys

import click

from nightcopy import __version__
from nightcopy.errors import NightcopyError, WorkerInterrupted


class NightcopyGroup(click.Group):
    """Turns NightcopyError (and Ctrl-C) into a one-line message and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WorkerInterrupted as exc:
            click.echo(f"nightcopy: {exc}", err=True)
            # Not sys.exit: the table threads in flight must not go on (and must not print
            # while the interpreter shuts down); the server rolls their transactions back.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        except NightcopyError as exc:
            click.echo(f"nightcopy: error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("nightcopy: interrupted", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug, not bad input: still one line and exit 1 (NIGHTCOPY_DEBUG=1 shows more).
            if os.environ.get("NIGHTCOPY_DEBUG"):
                raise
            # pg_message: one line, and a server error's DETAIL (row values) left out.
            from nightcopy.engine.failure_messages import pg_message

            click.echo(f"nightcopy: internal error: {type(exc).__name__}: {pg_message(exc)} "
                       "(set NIGHTCOPY_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=NightcopyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nightcopy")
def main() -> None:
    """Copy chosen PostgreSQL tables to a reporting database, atomically and in parallel."""


def _register() -> None:
    from nightcopy.cli.copy_command import copy_command

    main.add_command(copy_command)
    # --- other command modules register here (one line each) ---
    from nightcopy.cli.aws_commands import start, watch  # AWS: nightcopy start / watch
    main.add_command(start)
    main.add_command(watch)
    from nightcopy.cli import ops_commands  # run demo history timings plan validate
    ops_commands.register(main)


_register()
