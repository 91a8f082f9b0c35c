"""Errors a user sees: one short line naming the problem and the fix, never a secret."""

from __future__ import annotations


class NightcopyError(Exception):
    """An error with a message meant for the operator (printed without a traceback, exit 1)."""


class ConfigError(NightcopyError):
    """Bad configuration or input: detected before anything is written to the target."""


class ConnectError(NightcopyError):
    """A database could not be reached or refused the login."""

    role = ""  # "source" or "target"
    hint = ""  # the part of the message saying where to fix the DSN (callers may restate it)


class TableError(NightcopyError):
    """One table could not be copied; the others go on."""

    # True for a failure a later attempt could pass (locks held past every try): the report's
    # `retryable` (engine/invocation_report.is_transient).
    transient: bool = False


class WorkerInterrupted(NightcopyError):
    """The worker was stopped (Ctrl-C, SIGTERM) mid-copy after recording it: the process exits
    at once (its table threads are not waited for; their open transactions roll back)."""
