"""Run ids: one per run (the night), shared by every group's invocation of that night.

A run id is a Step Functions execution name too (`nightcopy start` names executions by their run
id, and the state machine passes it to every worker): 1 to 80 characters out of letters, digits,
`-` and `_`. A new one is unique per call (32 random bits beside a one-second UTC timestamp) and
sorts by time within a prefix.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

# What Step Functions accepts in an execution name, and what every run id nightcopy makes fits.
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


def new_run_id(prefix: str = "run") -> str:
    """`PREFIX-YYYYMMDDTHHMMSSZ-8hex`, e.g. `run-20261203T021500Z-9f86d081`; the prefix says who
    started the run (`run` for a bare `nightcopy copy`, `local` for `nightcopy run`, `demo`)."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"run id prefix {prefix!r}: 1 to 40 letters, digits, - or _")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(4)}"
