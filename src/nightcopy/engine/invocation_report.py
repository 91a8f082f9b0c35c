"""The run summary: the final JSON event, and the report file the Slack notifier reads."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.secrets import scrub


def report_key(run_id: str, group: str | None) -> str:
    return f"{run_id}/{group or 'default'}.json"


def check_report_uri(uri: str) -> None:
    """Refuse a malformed --report-uri before anything is copied."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3" and parsed.netloc:
        return
    if parsed.scheme == "file" and parsed.path:
        return
    raise ConfigError(f"--report-uri must be s3://BUCKET/PREFIX or file:///DIR, not {uri!r}")


def write_report(uri: str, run_id: str, group: str | None, report: dict) -> str:
    """Write the report to s3://BUCKET/PREFIX/RUN_ID/GROUP.json (or file:///DIR/...)."""
    body = scrub(json.dumps(report, default=str, ensure_ascii=False, indent=1))
    parsed = urlparse(uri)
    key = report_key(run_id, group)
    if parsed.scheme == "s3":
        import boto3
        import botocore.exceptions

        prefix = parsed.path.strip("/")
        full_key = f"{prefix}/{key}" if prefix else key
        try:
            boto3.client("s3").put_object(Bucket=parsed.netloc, Key=full_key,
                                          Body=body.encode(), ContentType="application/json")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise NightcopyError(f"could not write the run report to s3://{parsed.netloc}/"
                                 f"{full_key}: {scrub(str(exc))}") from None
        return f"s3://{parsed.netloc}/{full_key}"
    if parsed.scheme in ("file", ""):
        path = Path(parsed.path if parsed.scheme == "file" else uri) / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        except OSError as exc:
            raise NightcopyError(f"could not write the run report to {path}: {exc.strerror}"
                                 ) from None
        return str(path)
    raise NightcopyError(f"--report-uri must be s3://BUCKET/PREFIX or file:///DIR, not {uri!r}")
