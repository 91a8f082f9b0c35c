"""`nightcopy validate --ssm-prefix` compares the deployed stack's MapConcurrency with the
account's CodeBuild concurrent-build quota. CloudFormation is moto's; moto models no CodeBuild
quotas, so Service Quotas answers through botocore's Stubber with the documented response."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from nightcopy.aws.codebuild_quota import check_codebuild_quota

PREFIX = "/nightcopy/prod"


def _stack(concurrency: int, compute: str = "BUILD_GENERAL1_SMALL") -> None:
    template = {
        "Parameters": {"MapConcurrency": {"Type": "Number"}, "ComputeType": {"Type": "String"}},
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"SsmPrefix": {"Value": PREFIX}, "StateMachineArn": {"Value": "arn:x"}},
    }
    boto3.client("cloudformation").create_stack(
        StackName="nightcopy-prod", TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "MapConcurrency", "ParameterValue": str(concurrency)},
                    {"ParameterKey": "ComputeType", "ParameterValue": compute}])


def _quotas(value: float, code: str = "L-9D07B6EF"):
    quotas = boto3.client("service-quotas")
    stub = Stubber(quotas)
    stub.add_response("get_service_quota",
                      {"Quota": {"ServiceCode": "codebuild", "QuotaCode": code, "Value": value}},
                      {"ServiceCode": "codebuild", "QuotaCode": code})
    stub.activate()
    return quotas


@pytest.mark.parametrize(("concurrency", "quota", "fits"), [(4, 1.0, False), (4, 20.0, True)])
def test_map_concurrency_against_the_quota(moto_aws, concurrency, quota, fits):
    _stack(concurrency)
    problems: list[str] = []
    checked: list[str] = []
    check_codebuild_quota(PREFIX, problems, checked, quotas=_quotas(quota))
    if fits:
        assert problems == [] and "within the CodeBuild Linux/Small quota (20)" in checked[0]
    else:
        [problem] = problems
        assert "MapConcurrency=4 but this account may run only 1 concurrent Linux/Small" in problem
        assert "--quota-code L-9D07B6EF --desired-value 4" in problem


def test_no_stack_for_the_prefix_is_a_note_not_a_problem(moto_aws):
    problems: list[str] = []
    checked: list[str] = []
    check_codebuild_quota(PREFIX, problems, checked, quotas=_quotas(1.0))
    assert problems == [] and checked == [
        f"CodeBuild quota not checked (no deployed stack uses {PREFIX})"]


def test_without_a_prefix_nothing_is_asked():
    problems: list[str] = []
    checked: list[str] = []
    check_codebuild_quota(None, problems, checked)
    assert problems == checked == []


@pytest.mark.parametrize(("expression", "zone", "skipped"), [
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2027-03-28"),     # the spring-forward gap
    ("cron(0 1 * * ? *)", "Europe/London", "2027-03-28"),
    ("cron(30 2 * * ? *)", "America/New_York", "2027-03-14"),
    ("cron(0 2 * * ? *)", "UTC", None),                        # the default: never adjusted
    ("cron(30 4 * * ? *)", "Europe/Berlin", None),             # after every zone's change
    ("cron(30 3 * * ? *)", "Europe/Berlin", None),             # 03:30 exists (02:00 -> 03:00)
    ("rate(1 day)", "Europe/Berlin", None),
])
def test_a_local_time_in_a_dst_gap_is_refused(expression, zone, skipped):
    from datetime import date

    from nightcopy.aws.schedule_dst import dst_gap_problem

    problem = dst_gap_problem(expression, zone, today=date(2026, 12, 3))
    if skipped is None:
        assert problem is None
    else:
        assert problem is not None and skipped in problem and "04:00" in problem


def test_validate_names_the_stack_schedule_in_a_dst_gap(moto_aws):
    template = {"Parameters": {"ScheduleExpression": {"Type": "String"},
                               "ScheduleTimezone": {"Type": "String"}},
                "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"SsmPrefix": {"Value": PREFIX}, "StateMachineArn": {"Value": "a"}}}
    boto3.client("cloudformation").create_stack(
        StackName="nightcopy-prod", TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "ScheduleExpression", "ParameterValue": "cron(30 2 * * ? *)"},
                    {"ParameterKey": "ScheduleTimezone", "ParameterValue": "Europe/Berlin"}])
    problems: list[str] = []
    check_codebuild_quota(PREFIX, problems, [], quotas=_quotas(20.0))
    assert len(problems) == 1 and "02:30 does not exist on" in problems[0]
