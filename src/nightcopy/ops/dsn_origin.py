"""Connection errors that say where the DSN came from (the config file's key or the SSM
parameter), not every place a worker could have taken it from."""

from __future__ import annotations

from nightcopy.errors import ConnectError, NightcopyError


def config_dsn_hint(config, role: str) -> str:
    if getattr(config, "ssm_prefix", None):
        return f"check the SSM parameter {str(config.ssm_prefix).rstrip('/')}/{role}_dsn"
    return (f"check {role}_dsn in {config.origin} (or the environment variable its env: "
            "names)")


def restated(exc: NightcopyError, config) -> NightcopyError:
    """exc with its DSN hint naming the config's own key, when it is a connection error."""
    if isinstance(exc, ConnectError) and exc.hint and exc.hint in str(exc):
        error = ConnectError(str(exc).replace(exc.hint, config_dsn_hint(config, exc.role)))
        error.role, error.hint = exc.role, config_dsn_hint(config, exc.role)
        return error
    return exc
