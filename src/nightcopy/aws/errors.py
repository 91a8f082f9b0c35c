"""One translation of boto3/botocore failures into nightcopy's one-line errors.

Every AWS call nightcopy makes goes through `aws_call(...)` (and its clients through
`client(...)`): the failure is sorted into one of a few problems an operator can act on (no
region, no credentials, credentials refused, access denied, not found, endpoint unreachable,
anything else) and becomes one short line saying what nightcopy was doing and what to fix.

A call site names what it was doing and may replace the message of a problem it knows better
(the worker's SSM read names the flags that avoid SSM; `history --from-logs` says where to
find the log group's name). Messages are scrubbed of registered secrets. botocore is imported
only when a call fails or a client is made: `nightcopy copy` without AWS never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.secrets import scrub

# How the services are named in messages (the boto3 name is used in "a VPC endpoint for ...").
SERVICE_NAMES = {"ssm": "SSM", "s3": "S3", "logs": "CloudWatch Logs",
                 "stepfunctions": "Step Functions", "cloudformation": "CloudFormation"}

# Error codes AWS answers when the caller lacks a permission (IAM, KMS, S3, STS).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                          "AuthorizationError", "Forbidden", "403"})
# Error codes for credentials AWS does not accept (expired, deleted, mistyped).
REFUSED_CREDENTIAL_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "InvalidAccessKeyId",
    "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSignatureException",
    "RequestExpired"})


class Problem(StrEnum):
    """What went wrong, as far as the operator's fix is concerned."""

    NO_REGION = "no_region"
    PROFILE_NOT_FOUND = "profile_not_found"
    NO_CREDENTIALS = "no_credentials"
    CREDENTIALS_REFUSED = "credentials_refused"
    ACCESS_DENIED = "access_denied"
    NOT_FOUND = "not_found"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"  # any other answer from AWS (a ClientError)
    FAILED = "failed"  # any other botocore failure (timeouts, bad parameters, ...)


# The default message of each problem. Fields: {doing} what nightcopy was doing, {service} the
# service's display name, {endpoint} its boto3 name, {code} and {message} AWS's answer,
# {error} botocore's own text, {url} " " and the endpoint's URL (if known), {profile} AWS_PROFILE.
DEFAULT_MESSAGES: dict[Problem, str] = {
    # boto3 reads AWS_DEFAULT_REGION (or the profile's region), not AWS_REGION
    Problem.NO_REGION: "no AWS region is set for {service}: set AWS_DEFAULT_REGION (boto3 does "
                       "not read AWS_REGION) or a region in ~/.aws/config",
    Problem.PROFILE_NOT_FOUND: "AWS profile {profile!r} is not configured: fix AWS_PROFILE or "
                               "add the profile with aws configure --profile {profile}",
    Problem.NO_CREDENTIALS: "{doing}: no AWS credentials (set AWS_PROFILE or run aws configure)",
    Problem.CREDENTIALS_REFUSED: "{doing}: AWS refused the credentials ({code}): renew them "
                                 "(aws sso login, or new access keys)",
    Problem.ACCESS_DENIED: "{doing}: {code}: {message}",
    Problem.NOT_FOUND: "{doing}: {code}: {message}",
    Problem.UNREACHABLE: "{doing}: cannot reach the {service} endpoint{url}: check the network "
                         "(NAT or a VPC endpoint for {endpoint})",
    Problem.REFUSED: "{doing}: {code}: {message}",
    Problem.FAILED: "{doing}: {error}",
}

# Problems the operator fixes in the configuration (the rest are AwsError).
_CONFIG_PROBLEMS = {Problem.NO_REGION, Problem.PROFILE_NOT_FOUND, Problem.NO_CREDENTIALS,
                    Problem.CREDENTIALS_REFUSED, Problem.ACCESS_DENIED}


class AwsError(NightcopyError):
    """An AWS call failed; `code` is AWS's error code when AWS answered (else "")."""

    def __init__(self, message: str, code: str = "", problem: Problem = Problem.FAILED):
        super().__init__(message)
        self.code = code
        self.problem = problem


class AwsConfigError(AwsError, ConfigError):
    """An AWS call failed for a reason the operator fixes in the setup (region, credentials,
    permissions), or while reading the configuration: also a ConfigError."""


def classify(exc: BaseException) -> tuple[Problem, str, str]:
    """(problem, AWS error code, AWS message) for a boto3/botocore exception."""
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        message = str(error.get("Message", "") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in REFUSED_CREDENTIAL_CODES:
            return Problem.CREDENTIALS_REFUSED, code, message
        if code in DENIED_CODES or (status == 403 and not code.endswith("NotFound")):
            return Problem.ACCESS_DENIED, code or "403", message
        if (code.endswith(("NotFound", "NotFoundException", "DoesNotExist"))
                or code.startswith("NoSuch") or status == 404):
            return Problem.NOT_FOUND, code or "404", message
        return Problem.REFUSED, code or str(status or "error"), message
    if isinstance(exc, bx.NoRegionError):
        return Problem.NO_REGION, "", ""
    if isinstance(exc, bx.ProfileNotFound):
        return Problem.PROFILE_NOT_FOUND, "", ""
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return Problem.NO_CREDENTIALS, "", ""
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError
                  | bx.ProxyConnectionError):
        return Problem.UNREACHABLE, "", ""
    return Problem.FAILED, "", ""


def translate(exc: BaseException, doing: str, service: str,
              messages: Mapping[Problem, str] | None = None, *, reading_config: bool = False,
              **names: str) -> AwsError:
    """The one-line nightcopy error for `exc`, raised while `doing` (a phrase: "reading the
    execution history") on `service` (boto3's name: "ssm", "s3", ...). `messages` replaces
    the default message of some problems; `names` are more fields for those templates (values
    are never parsed as templates, so a name with braces in it is safe). `reading_config`: the
    call reads nightcopy's configuration, so every failure is a ConfigError (`nightcopy
    validate` lists it as a problem of the configuration)."""
    problem, code, message = classify(exc)
    url = getattr(exc, "kwargs", {}).get("endpoint_url")
    template = (messages or {}).get(problem) or DEFAULT_MESSAGES[problem]
    text = template.format(**names, doing=doing, service=SERVICE_NAMES.get(service, service),
                           endpoint=service, code=code, message=message.rstrip("."),
                           error=str(exc), url=f" {url}" if url else "",
                           profile=os.environ.get("AWS_PROFILE", ""))
    kind = AwsConfigError if reading_config or problem in _CONFIG_PROBLEMS else AwsError
    return kind(scrub(text.rstrip(": ")), code, problem)


@contextmanager
def aws_call(doing: str, service: str, messages: Mapping[Problem, str] | None = None, *,
             reading_config: bool = False, **names: str) -> Iterator[None]:
    """Run boto3 calls; any boto3/botocore failure leaves as one AwsError (see translate)."""
    import botocore.exceptions as bx

    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise translate(exc, doing, service, messages, reading_config=reading_config,
                        **names) from None


def client(service: str, messages: Mapping[Problem, str] | None = None, *,
           reading_config: bool = False, **names: str) -> Any:
    """A boto3 client, or a one-line error (no region, unknown AWS_PROFILE)."""
    import boto3

    with aws_call(f"connecting to {SERVICE_NAMES.get(service, service)}", service, messages,
                  reading_config=reading_config, **names):
        return boto3.client(service)
