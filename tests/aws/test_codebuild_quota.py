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
