"""Where the connections' passwords come from (options source_auth / target_auth), installed
once per process before anything connects: libpq's own, or RDS IAM tokens (nightcopy.aws)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def install(options: Mapping[str, Any]) -> None:
    """Apply options' source_auth and target_auth (absent: libpq's own) to every connection."""
    from nightcopy.engine.connection import use_password_source

    for role in ("source", "target"):
        if options.get(f"{role}_auth") == "rds-iam":
            from nightcopy.aws.rds_iam import token_source

            use_password_source(role, token_source(role))
        else:
            use_password_source(role, None)
