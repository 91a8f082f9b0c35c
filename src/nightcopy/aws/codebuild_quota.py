"""`nightcopy validate --ssm-prefix`: the deployed stack's MapConcurrency against the account's
CodeBuild concurrent-build quota (Service Quotas).

New accounts often may run only 0 to 5 builds at once per compute type. With MapConcurrency
above that, builds queue, and after the project's QueuedTimeoutInMinutes (30) a queued group
fails although nothing was wrong. The stack is the one whose SsmPrefix output is the prefix
being validated; its MapConcurrency and ComputeType parameters are read from CloudFormation.

Quota codes (service code `codebuild`, "Concurrently running builds for Linux/<size>
environment"): from the public quota listings; an account without the code applied yet gets
AWS's default value.
"""

from __future__ import annotations

from typing import Any

from nightcopy.aws.errors import AwsError, aws_call, client
from nightcopy.aws.schedule_dst import dst_gap_problem
from nightcopy.errors import NightcopyError

QUOTA_CODES = {
    "BUILD_GENERAL1_SMALL": ("L-9D07B6EF", "Linux/Small"),
    "BUILD_GENERAL1_MEDIUM": ("L-2DC20C30", "Linux/Medium"),
    "BUILD_GENERAL1_LARGE": ("L-4DDC4A99", "Linux/Large"),
    "BUILD_GENERAL1_2XLARGE": ("L-0397D009", "Linux/2XLarge"),
}


def _stack_using(cfn: Any, prefix: str) -> dict[str, Any] | None:
    """The stack whose SsmPrefix output is `prefix` (the nightcopy stack of this config)."""
    with aws_call("listing the CloudFormation stacks", "cloudformation"):
        pages = list(cfn.get_paginator("describe_stacks").paginate())
    for page in pages:
        for stack in page.get("Stacks", []):
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if outputs.get("SsmPrefix") == prefix and "StateMachineArn" in outputs:
                return dict(stack)
    return None


def _quota_value(quotas: Any, code: str) -> float:
    try:
        with aws_call("reading the CodeBuild quota", "service-quotas"):
            return float(quotas.get_service_quota(ServiceCode="codebuild",
                                                  QuotaCode=code)["Quota"]["Value"])
    except AwsError:  # not applied to this account yet: AWS's default holds
        with aws_call("reading the CodeBuild default quota", "service-quotas"):
            return float(quotas.get_aws_default_service_quota(
                ServiceCode="codebuild", QuotaCode=code)["Quota"]["Value"])


def check_codebuild_quota(prefix: str | None, problems: list[str], checked: list[str],
                          *, cfn: Any = None, quotas: Any = None) -> None:
    """Append a problem when the stack's MapConcurrency exceeds the quota for its ComputeType,
    a checked line when it fits, and a note when it could not be read (no credentials or no
    stack: not a problem of the configuration)."""
    if not prefix:
        return
    try:
        cfn = cfn or client("cloudformation")
        stack = _stack_using(cfn, prefix)
        if stack is None:
            checked.append(f"CodeBuild quota not checked (no deployed stack uses {prefix})")
            return
        params = {p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue")
                  for p in stack.get("Parameters", [])}
        # the schedule's local time, checked here because the stack is at hand (schedule_dst)
        gap = dst_gap_problem(str(params.get("ScheduleExpression") or ""),
                              str(params.get("ScheduleTimezone") or "UTC"))
        if gap:
            problems.append(f"stack {stack['StackName']}: {gap}")
        concurrency = int(params.get("MapConcurrency") or 4)
        compute = str(params.get("ComputeType") or "BUILD_GENERAL1_SMALL")
        if compute not in QUOTA_CODES:
            checked.append(f"CodeBuild quota not checked (no known quota for {compute})")
            return
        code, label = QUOTA_CODES[compute]
        limit = _quota_value(quotas or client("service-quotas"), code)
    except NightcopyError as exc:
        checked.append(f"CodeBuild quota not checked ({exc})")
        return
    name = stack["StackName"]
    if concurrency > limit:
        problems.append(
            f"stack {name}: MapConcurrency={concurrency} but this account may run only "
            f"{limit:g} concurrent {label} CodeBuild builds: groups beyond that queue and fail "
            f"after 30 minutes; request more (aws service-quotas "
            f"request-service-quota-increase --service-code codebuild --quota-code {code} "
            f"--desired-value {concurrency}) or lower MapConcurrency")
    else:
        checked.append(f"stack {name}: MapConcurrency={concurrency} within the CodeBuild "
                       f"{label} quota ({limit:g})")
