"""The worker's output: JSON lines on stdout (for Logs Insights and `nightcopy run`), human
messages on stderr. Every line is scrubbed of secrets before it is written.

The JSON lines are a data protocol with fixed field names, declared once in
nightcopy.engine.event_schema (and documented in docs/events.md), so they are written with
json.dumps directly rather than through a logging formatter that adds fields of its own.

Each event is checked against its declaration before it is written. In production a mismatch
never fails a night: the line is written exactly as it was emitted, and stderr gets one warning
per kind of mismatch (outside checks then see the same bytes, and the operator sees why). With
NC_STRICT_EVENTS=1 (tests/conftest.py sets it) a mismatch raises EventSchemaError instead, so
the test that caused it fails. The switch is deliberately not a NIGHTCOPY_* variable: it is a
development setting, and `nightcopy run` and the test helpers clear the operator's NIGHTCOPY_*
settings before starting workers, which would drop it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import IO, Any

from nightcopy.engine.event_schema import WARNING, event_problems
from nightcopy.secrets import scrub

STRICT_ENV = "NC_STRICT_EVENTS"
# Every message of a strict-mode failure starts so (tests look for it on stderr too).
VIOLATION = "event schema violation"


class EventSchemaError(Exception):
    """An event does not match its declaration (raised in strict mode only)."""


class EventWriter:
    def __init__(self, run_id: str, group: str | None, out: IO[str] | None = None,
                 err: IO[str] | None = None, strict: bool | None = None):
        self.run_id = run_id
        self.group = group
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._lock = threading.Lock()
        self.strict = os.environ.get(STRICT_ENV) == "1" if strict is None else strict
        self._warned: set[str] = set()

    def emit(self, event: str, **fields: Any) -> None:
        problems = event_problems(event, fields)
        if problems:
            self._mismatch(problems)
        record = {"event": event, "run_id": self.run_id, "group": self.group, **fields,
                  "ts": round(time.time(), 3)}
        line = scrub(json.dumps(record, default=str, ensure_ascii=False))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def _mismatch(self, problems: list[str]) -> None:
        text = f"{VIOLATION}: {'; '.join(problems)}"
        if self.strict:
            self.say(f"nightcopy: {text}")
            raise EventSchemaError(scrub(text))
        with self._lock:
            fresh = text not in self._warned
            self._warned.add(text)
        if fresh:  # a mismatch in table_progress would otherwise repeat every 30 s
            self.say(f"nightcopy: warning: {text} (the line is written as emitted; please "
                     "report this as a bug)")

    def say(self, message: str) -> None:
        with self._lock:
            self._err.write(scrub(message) + "\n")
            self._err.flush()

    def warn(self, message: str, table: str | None = None) -> None:
        self.emit(WARNING, table=table, message=message)
        self.say(f"nightcopy: warning: {message}")
