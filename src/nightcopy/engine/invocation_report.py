"""The invocation's report file, which the Slack notifier reads: its key, its body, and where it
goes.

The engine does not know where a report goes: it is handed a ReportWriter. The command line
builds one from --report-uri (nightcopy.aws.s3_reports.report_writer): file:///DIR is the
FileReportWriter below, s3://BUCKET/PREFIX an S3 writer in the AWS layer (the engine has no
boto3). The URI is checked before anything is copied (check_report_uri).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from nightcopy.engine.connection import looks_lost
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.options import name_problem
from nightcopy.secrets import scrub


class ReportWriter(Protocol):
    """Stores one report body under a key (RUN_ID/GROUP.json) and says where it went."""

    def write(self, key: str, body: str) -> str:
        """Store `body` under `key`; returns the location (run_summary's `report`). Raises
        NightcopyError with a one-line message when it cannot."""
        ...


def report_key(run_id: str, group: str | None) -> str:
    """RUN_ID/GROUP.json. The command line already refused names that do not fit
    [A-Za-z0-9_-]{1,80}; a library caller's are checked again here, so no name can make a key
    that climbs out of the report location."""
    name = group or "default"
    for what, value in (("run id", run_id), ("group name", name)):
        problem = name_problem(value)
        if problem is not None:
            raise NightcopyError(f"the run report was not written: its {what} {problem}")
    return f"{run_id}/{name}.json"


def check_report_key(key: str) -> str:
    """Refuse a key that could leave the report location: absolute, empty or dot segments,
    backslashes (the writers' last check, whatever made the key)."""
    parts = key.split("/")
    if (not key or "\\" in key or "\0" in key
            or any(part in ("", ".", "..") for part in parts)):
        raise NightcopyError(f"the run report was not written: its key {key!r} would leave the "
                             "report location")
    return key


def check_report_uri(uri: str) -> None:
    """Refuse a malformed --report-uri before anything is copied."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3" and parsed.netloc:
        return
    if parsed.scheme == "file" and parsed.path:
        return
    raise ConfigError(f"--report-uri must be s3://BUCKET/PREFIX or file:///DIR, not {uri!r}")


@dataclass(frozen=True)
class FileReportWriter:
    """Reports under a local directory: DIR/RUN_ID/GROUP.json (`nightcopy run`, tests)."""

    directory: Path

    @classmethod
    def from_uri(cls, uri: str) -> FileReportWriter:
        """For file:///DIR (checked with check_report_uri first)."""
        check_report_uri(uri)
        return cls(Path(urlparse(uri).path))

    def write(self, key: str, body: str) -> str:
        path = self.directory / check_report_key(key)
        # A symbolic link inside the directory must not lead the report out of it either.
        root = self.directory.resolve()
        if not path.resolve().is_relative_to(root):
            raise NightcopyError(f"the run report was not written: {path} leads outside "
                                 f"{root}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        except OSError as exc:
            raise NightcopyError(f"could not write the run report to {path}: {exc.strerror}"
                                 ) from None
        return str(path)


def write_report(writer: ReportWriter, run_id: str, group: str | None,
                 report: dict[str, Any]) -> str:
    """Write the report (secrets scrubbed) as RUN_ID/GROUP.json; returns where it went."""
    body = scrub(json.dumps(report, default=str, ensure_ascii=False, indent=1))
    return writer.write(report_key(run_id, group), body)


# ------------------------------------------------------- the report's `retryable` (issue 15)
# The report's schema version: the notifier and the state machine may meet a report of an older,
# pinned worker. 2 added `retryable` and `schema_version` itself (1: no such fields).
REPORT_SCHEMA_VERSION = 2

# SQLSTATEs after which the same invocation, started again, may well succeed: serialization
# failure (also a hot standby's "conflict with recovery"), deadlock, lock not available, too
# many connections, and the server going away or starting. A lost connection (looks_lost) too.
# Everything else - a refusal (trust, shrink guard, an object in the way), a bad table list,
# a missing privilege, a type the target cannot hold - fails the same way the second time.
TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03")


def is_transient(exc: BaseException) -> bool:
    """Whether a table's failure could pass on a second attempt (the state machine retries a
    failed build once only when every failed table's was)."""
    if getattr(exc, "transient", False):  # a TableError that says so (lock tries exhausted)
        return True
    cause = getattr(exc, "cause", None) or exc  # a SourceStreamError wraps the psycopg2 error
    code = getattr(cause, "pgcode", None)
    return bool(code and code in TRANSIENT_SQLSTATES) or looks_lost(cause)


def report_retryable(failed_transient: list[bool]) -> bool:
    """The report's `retryable`: some tables failed, and every one of them transiently."""
    return bool(failed_transient) and all(failed_transient)
