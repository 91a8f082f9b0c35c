"""The worker's output: JSON lines on stdout (for Logs Insights and `nightcopy run`), human
messages on stderr. Every line is scrubbed of secrets before it is written.

The JSON lines are a data protocol with fixed field names (design.md), so they are written with
json.dumps directly rather than through a logging formatter that adds fields of its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from nightcopy.secrets import scrub


class EventWriter:
    def __init__(self, run_id: str, group: str | None, out: IO[str] | None = None,
                 err: IO[str] | None = None):
        self.run_id = run_id
        self.group = group
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "run_id": self.run_id, "group": self.group, **fields,
                  "ts": round(time.time(), 3)}
        line = scrub(json.dumps(record, default=str, ensure_ascii=False))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def say(self, message: str) -> None:
        with self._lock:
            self._err.write(scrub(message) + "\n")
            self._err.flush()

    def warn(self, message: str, table: str | None = None) -> None:
        self.emit("warning", table=table, message=message)
        self.say(f"nightcopy: warning: {message}")
