"""Run reports in S3 (what the Slack notifier reads), and the writer for a --report-uri."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from nightcopy.aws.errors import aws_call
from nightcopy.aws.errors import client as aws_client
from nightcopy.engine.invocation_report import (
    FileReportWriter,
    ReportWriter,
    check_report_key,
    check_report_uri,
)


@dataclass(frozen=True)
class S3ReportWriter:
    """Reports under s3://BUCKET/PREFIX: PREFIX/RUN_ID/GROUP.json."""

    bucket: str
    prefix: str = ""

    def write(self, key: str, body: str) -> str:
        # S3 keys are not paths, but readers that treat them as such (a sync to disk, a
        # console) must not be led out of the prefix either.
        key = check_report_key(key)
        full_key = f"{self.prefix}/{key}" if self.prefix else key
        where = f"s3://{self.bucket}/{full_key}"
        doing = f"could not write the run report to {where}"
        with aws_call(doing, "s3"):
            # The client is made here, not when the URI is read: a worker whose report
            # cannot be written still copies (and says so in run_summary's report_error).
            s3 = aws_client("s3")
            s3.put_object(Bucket=self.bucket, Key=full_key, Body=body.encode(),
                          ContentType="application/json")
        return where


def report_writer(uri: str) -> ReportWriter:
    """The writer for --report-uri: s3://BUCKET/PREFIX, or file:///DIR. A malformed URI is a
    ConfigError here, before anything is copied."""
    check_report_uri(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3ReportWriter(parsed.netloc, parsed.path.strip("/"))
    return FileReportWriter.from_uri(uri)
