"""One mapping of boto3/botocore failures to nightcopy's one-line errors (nightcopy.aws.errors),
used by SSM, the S3 reports, Logs Insights and Step Functions alike.

The commands run in a process of their own with a controlled environment (no credentials,
no region, an unknown profile, an endpoint nobody listens on): boto3 caches credentials per
process, and these failures must be the real ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions as bx
import pytest
from moto import mock_aws

from nightcopy.aws.errors import AwsConfigError, AwsError, Problem, aws_call, classify, translate
from nightcopy.aws.s3_reports import S3ReportWriter, report_writer
from nightcopy.engine.invocation_report import FileReportWriter, write_report
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.secrets import register_secret

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:nightcopy:nightly-2026-11-25"


def client_error(code: str, message: str = "", status: int = 400) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "AnOperation")


@pytest.mark.parametrize("exc, problem", [
    (client_error("AccessDeniedException", "User: x is not authorized"), Problem.ACCESS_DENIED),
    (client_error("AccessDenied", "Access Denied", 403), Problem.ACCESS_DENIED),
    (client_error("", "", 403), Problem.ACCESS_DENIED),
    (client_error("ExpiredTokenException", "The security token included in the request is "
                  "expired"), Problem.CREDENTIALS_REFUSED),
    (client_error("UnrecognizedClientException"), Problem.CREDENTIALS_REFUSED),
    (client_error("ParameterNotFound"), Problem.NOT_FOUND),
    (client_error("ResourceNotFoundException"), Problem.NOT_FOUND),
    (client_error("ExecutionDoesNotExist"), Problem.NOT_FOUND),
    (client_error("NoSuchBucket", "", 404), Problem.NOT_FOUND),
    (client_error("ThrottlingException"), Problem.REFUSED),
    (bx.NoRegionError(), Problem.NO_REGION),
    (bx.ProfileNotFound(profile="nosuch"), Problem.PROFILE_NOT_FOUND),
    (bx.NoCredentialsError(), Problem.NO_CREDENTIALS),
    (bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
     Problem.NO_CREDENTIALS),
    (bx.EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/"),
     Problem.UNREACHABLE),
    (bx.ConnectTimeoutError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/"),
     Problem.UNREACHABLE),
    (bx.ReadTimeoutError(endpoint_url="https://ssm.eu-west-1.amazonaws.com/"), Problem.FAILED),
])
def test_every_failure_is_sorted_into_a_problem(exc: Exception, problem: Problem):
    assert classify(exc)[0] is problem


def test_the_default_messages_say_what_was_being_done_and_what_to_fix():
    doing = "reading the execution history"
    said = {p: str(translate(e, doing, "stepfunctions")) for p, e in [
        (Problem.NO_CREDENTIALS, bx.NoCredentialsError()),
        (Problem.ACCESS_DENIED, client_error("AccessDeniedException", "User: x is not "
                                             "authorized to perform: states:DescribeExecution.")),
        (Problem.UNREACHABLE, bx.EndpointConnectionError(endpoint_url="https://states.x/")),
        (Problem.NOT_FOUND, client_error("ExecutionDoesNotExist", "Execution Does Not Exist")),
        (Problem.NO_REGION, bx.NoRegionError()),
    ]}
    assert said[Problem.NO_CREDENTIALS] == (
        "reading the execution history: no AWS credentials (set AWS_PROFILE or run aws configure)")
    assert said[Problem.ACCESS_DENIED] == (
        "reading the execution history: AccessDeniedException: User: x is not authorized to "
        "perform: states:DescribeExecution")
    assert said[Problem.UNREACHABLE] == (
        "reading the execution history: cannot reach the Step Functions endpoint "
        "https://states.x/: check the network (NAT or a VPC endpoint for stepfunctions)")
    assert said[Problem.NOT_FOUND] == (
        "reading the execution history: ExecutionDoesNotExist: Execution Does Not Exist")
    assert said[Problem.NO_REGION].startswith("no AWS region is set for Step Functions: set "
                                              "AWS_DEFAULT_REGION")
    assert all("\n" not in m for m in said.values())


def test_setup_problems_are_config_errors_and_carry_the_code():
    denied = translate(client_error("AccessDeniedException"), "x", "ssm")
    assert isinstance(denied, AwsConfigError) and isinstance(denied, ConfigError)
    assert denied.code == "AccessDeniedException" and denied.problem is Problem.ACCESS_DENIED
    throttled = translate(client_error("ThrottlingException"), "x", "ssm")
    assert isinstance(throttled, AwsError) and not isinstance(throttled, ConfigError)
    # reading the configuration: every failure is a configuration problem (nightcopy validate)
    assert isinstance(translate(client_error("ThrottlingException"), "x", "ssm",
                                reading_config=True), ConfigError)


def test_a_call_site_replaces_a_message_and_names_are_never_templates():
    messages = {Problem.NOT_FOUND: "log group {group} does not exist"}
    with (pytest.raises(AwsError, match=r"^log group /a/\{x\} does not exist$"),
          aws_call("querying", "logs", messages, group="/a/{x}")):
        raise client_error("ResourceNotFoundException")


def test_secrets_never_leave_in_a_message():
    register_secret("hunter2-in-the-url")
    with pytest.raises(AwsError) as caught, aws_call("reading", "ssm"):
        raise client_error("ValidationException", "bad value hunter2-in-the-url")
    assert "hunter2" not in str(caught.value)


def test_errors_that_are_not_aws_pass_through():
    with pytest.raises(NightcopyError, match="^ended Failed$"), aws_call("querying", "logs"):
        raise NightcopyError("ended Failed")


# --- the report writers ---------------------------------------------------------------------

def test_report_uri_is_checked_when_the_writer_is_built():
    with pytest.raises(ConfigError, match=r"^--report-uri must be s3://BUCKET/PREFIX or "
                       r"file:///DIR, not 'ftp://reports.example/x'$"):
        report_writer("ftp://reports.example/x")
    with pytest.raises(ConfigError):
        report_writer("s3:///no-bucket")
    assert report_writer("s3://bucket/a/b/") == S3ReportWriter("bucket", "a/b")
    assert report_writer("file:///tmp/r") == FileReportWriter(Path("/tmp/r"))


def test_file_reports_stay_in_the_engine_and_are_scrubbed(tmp_path: Path):
    register_secret("s3cr3t-in-a-report")
    where = write_report(FileReportWriter(tmp_path), "r1", None,
                         {"status": "failed", "error": "password s3cr3t-in-a-report"})
    assert where == str(tmp_path / "r1" / "default.json")
    assert "s3cr3t" not in (tmp_path / "r1" / "default.json").read_text()


def test_s3_reports_land_under_the_prefix_and_a_missing_bucket_is_one_line(aws_env):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="reports",
                                         CreateBucketConfiguration={
                                             "LocationConstraint": os.environ["AWS_REGION"]})
        where = write_report(report_writer("s3://reports/nightly"), "r1", "g1", {"rows": 1})
        assert where == "s3://reports/nightly/r1/g1.json"
        body = boto3.client("s3").get_object(Bucket="reports", Key="nightly/r1/g1.json")["Body"]
        assert json.loads(body.read()) == {"rows": 1}
        with pytest.raises(AwsError) as caught:
            write_report(report_writer("s3://nosuch/x"), "r1", "g1", {"rows": 1})
    assert str(caught.value) == ("could not write the run report to s3://nosuch/x/r1/g1.json: "
                                 "NoSuchBucket: The specified bucket does not exist")


# --- the commands, in a process of their own -------------------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nightcopy(args: list[str], tmp_path: Path, **aws: str) -> subprocess.CompletedProcess[str]:
    """The CLI with no AWS settings but `aws` (no config files, no instance metadata)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1", **aws)
    return subprocess.run([sys.executable, "-m", "nightcopy", *args], env=env,
                          capture_output=True, text=True, timeout=120)


KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.mark.parametrize("args, aws, message", [
    # a missing region was a traceback-free "internal error: NoRegionError" before
    (["history", "--from-logs", "--log-group", "/aws/codebuild/nightcopy"], {},
     "no AWS region is set for CloudWatch Logs: set AWS_DEFAULT_REGION"),
    # boto3 reads AWS_DEFAULT_REGION only: the message must not send the operator to AWS_REGION
    (["watch", EXECUTION], {"AWS_REGION": "eu-west-1"},
     "no AWS region is set for Step Functions: set AWS_DEFAULT_REGION (boto3 does not read "
     "AWS_REGION)"),
    (["start", "--state-machine-arn", "arn:aws:states:eu-west-1:1:stateMachine:n"],
     {"AWS_PROFILE": "nosuch"}, "AWS profile 'nosuch' is not configured: fix AWS_PROFILE"),
    (["watch", EXECUTION], {"AWS_DEFAULT_REGION": "eu-west-1"},
     "finding execution nightly-2026-11-25: no AWS credentials (set AWS_PROFILE or run "
     "aws configure)"),
    (["history", "--from-logs", "--log-group", "/aws/codebuild/nightcopy"],
     {"AWS_DEFAULT_REGION": "eu-west-1"},
     "querying CloudWatch Logs /aws/codebuild/nightcopy: no AWS credentials"),
    # unreachable: was "finding execution ...: EndpointConnectionError"
    (["watch", EXECUTION], {"AWS_DEFAULT_REGION": "eu-west-1", **KEYS,
                            "AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"},
     "finding execution nightly-2026-11-25: cannot reach the Step Functions endpoint "
     "http://127.0.0.1:{port}/: check the network"),
    (["history", "--from-logs", "--log-group", "/g"],
     {"AWS_DEFAULT_REGION": "eu-west-1", **KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"},
     "querying CloudWatch Logs /g: cannot reach the CloudWatch Logs endpoint"),
], ids=["logs-no-region", "sfn-aws-region-only", "unknown-profile", "sfn-no-credentials",
        "logs-no-credentials", "sfn-unreachable", "logs-unreachable"])
def test_aws_failures_are_one_clear_line(tmp_path: Path, args: list[str], aws: dict[str, str],
                                         message: str):
    port = str(closed_port())
    aws = {k: v.replace("{port}", port) for k, v in aws.items()}
    result = nightcopy(args, tmp_path, **aws)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("nightcopy: error: "), result.stderr
    assert message.replace("{port}", port) in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_plan_write_without_credentials_names_the_parameter(tmp_path: Path, monkeypatch):
    from nightcopy.ops.plan import write_table_groups

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session(region_name="eu-west-1")  # fresh: no cached credentials
    with pytest.raises(AwsError, match=r"^cannot update SSM parameter /nc/prod/table_groups: "
                       r"no AWS credentials \(set AWS_PROFILE or run aws configure\)$"):
        write_table_groups("/nc/prod", "[]", client=session.client("ssm"))
