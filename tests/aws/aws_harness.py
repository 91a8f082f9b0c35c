"""Running the real statemachines/*.asl.json in moto (pinned: moto==5.2.5, internal API).

moto's Step Functions interpreter runs neither `codebuild:startBuild.sync` nor Lambda code
without Docker. Two test-side integrations fill the gap (recipe in shared/facts.md):

- CodeBuildSync: `arn:aws:states:::codebuild:startBuild.sync` calls a Python `runner(params)`
  that returns a CodeBuild `Build` dict; a build whose BuildStatus is not SUCCEEDED fails the task
  with `States.TaskFailed` and the `{"Build": ...}` JSON as cause (as AWS does), so the ASL's
  Retry/Catch run for real.
- LambdaInProcess: `arn:aws:states:::lambda:invoke` calls the real handler in-process.

The worker itself runs in-process (`nightcopy.cli.main.main(["copy"], standalone_mode=False)`) with
the build's EnvironmentVariablesOverride as its environment: a subprocess could not reach the
in-process moto backend (moto's server mode needs flask, which is not among the test
dependencies). Builds run one at a time (os.environ is process-wide).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
    state_task_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (  # noqa: E501
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: E501
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

from tests.conftest import REGION  # noqa: E402  (one region for every moto test)

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachines" / "nightcopy.asl.json"
ACCOUNT = "123456789012"
PREFIX = "/nightcopy/test"  # the stack's SSM prefix
BUCKET = "nightcopy-reports-test"  # its reports bucket

BuildRunner = Callable[[dict], dict]
Handler = Callable[[dict, Any], Any]


def substitute(text: str, substitutions: dict[str, str]) -> str:
    """Apply DefinitionSubstitutions the way Step Functions does (plain `${Name}` replacement)."""
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    return text


def load_asl(substitutions: dict[str, str]) -> str:
    # The substitutions every test shares: the partition, where the reports are (from
    # ReportUri), and no real wait before a build's one retry.
    report_bucket, _, report_prefix = substitutions.get("ReportUri", "s3://x/reports")[5:].partition("/")
    substitutions = {"Partition": "aws", "ReportBucket": report_bucket,
                     "ReportPrefix": report_prefix, "RetryWaitSeconds": "0", **substitutions}
    text = substitute(ASL_PATH.read_text(), substitutions)
    json.loads(text)  # still valid JSON after substitution
    if "${" in text:
        raise AssertionError(f"unsubstituted placeholder left in {ASL_PATH.name}")
    return text


class TaskFailure(Exception):  # noqa: N818 - named for what Step Functions reports
    """Raised by a build runner: the task fails with this error name and cause instead of
    running a build (CodeBuild refused the start, the task timed out, ...)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error)
        self.error, self.cause = error, cause


def _states_error(error: str) -> StatesErrorName | CustomErrorName:
    if not error.startswith("States."):
        return CustomErrorName(error)
    return StatesErrorName(typ=StatesErrorNameType.from_name(error))


class CodeBuildSync(StateTaskServiceCallback):
    """`codebuild:startBuild.sync`: run the build, then succeed or fail the task as AWS does."""

    runner: BuildRunner | None = None

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync})

    def _get_supported_parameters(self) -> set[str] | None:
        if self.resource.api_action.lower() != "startbuild":
            return None
        return {"ProjectName", "EnvironmentVariablesOverride", "SourceVersion",
                "BuildspecOverride", "TimeoutInMinutesOverride", "ImageOverride",
                "ComputeTypeOverride"}

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters,
                           state_credentials) -> None:
        assert CodeBuildSync.runner is not None, "no build runner installed"
        try:
            build = CodeBuildSync.runner(normalised_parameters)
        except TaskFailure as failure:
            self._fail(env, failure.error, failure.cause)
        env.stack.append({"Build": build})

    def _fail(self, env, error: str, cause: str) -> None:
        raise FailureEventException(FailureEvent(
            env=env,
            error_name=_states_error(error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                resource=self._get_sfn_resource(),
                resourceType=self._get_sfn_resource_type(),
                error=error,
                cause=cause,
            )),
        ))

    def _eval_integration_pattern(self, env, resource_runtime_part, normalised_parameters,
                                  state_credentials) -> None:
        # The build already ran to completion in _eval_service_task. (moto's own .sync polling
        # needs a task-token endpoint that a Retry of the same state finds already closed.)
        output = env.stack.pop()
        if output["Build"]["BuildStatus"] != "SUCCEEDED":
            self._fail(env, "States.TaskFailed",
                       json.dumps(output, separators=(",", ":"), default=str))
        env.stack.append(output)


class LambdaInProcess(StateTaskServiceLambda):
    handlers: dict[str, Handler] = {}

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters,
                           state_credentials) -> None:
        name = normalised_parameters["FunctionName"]
        handler = LambdaInProcess.handlers[name]
        payload = json.loads(normalised_parameters.get("Payload") or b"{}")
        try:
            result = handler(payload, None)
        except Exception as exc:  # what Lambda reports for an unhandled exception
            raise lambda_eval_utils.LambdaFunctionErrorException(
                "Unhandled", json.dumps({"errorType": type(exc).__name__,
                                         "errorMessage": str(exc)})) from exc
        env.stack.append({"StatusCode": 200, "ExecutedVersion": "$LATEST",
                          "Payload": json.loads(json.dumps(result, default=str))})


class AwsSdkTextBodies(StateTaskServiceAwsSdk):
    """`aws-sdk:s3:getObject` as on AWS: Step Functions hands a text object's Body over as a
    string; moto 5.2.5 leaves boto3's stream there (StringToJson($.Body) then fails)."""

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters,
                           state_credentials) -> None:
        super()._eval_service_task(env, resource_runtime_part, normalised_parameters,
                                   state_credentials)
        response = env.stack[-1]
        if isinstance(response, dict) and hasattr(response.get("Body"), "read"):
            response["Body"] = response["Body"].read().decode()


@contextlib.contextmanager
def integrations(runner: BuildRunner, handlers: dict[str, Handler]) -> Iterator[None]:
    """Route codebuild and lambda tasks of state machines created inside to the given callables.

    Patched at state machine creation (the factory is called when the definition is parsed).
    """
    original = state_task_factory.state_task_service_for

    def factory(service_name: str):
        if service_name == "codebuild":
            return CodeBuildSync()
        if service_name == "lambda":
            return LambdaInProcess()
        if service_name == "aws-sdk":
            return AwsSdkTextBodies()
        return original(service_name)

    CodeBuildSync.runner = runner
    LambdaInProcess.handlers = handlers
    state_task_factory.state_task_service_for = factory
    try:
        yield
    finally:
        state_task_factory.state_task_service_for = original
        CodeBuildSync.runner = None
        LambdaInProcess.handlers = {}


def fake_build(project: str, succeeded: bool, failed_status: str = "FAILED") -> dict:
    """A CodeBuild Build object with the fields the state machine reads (plus bulk, as AWS)."""
    build_id = f"{project}:{uuid.uuid4()}"
    return {
        "Id": build_id,
        "Arn": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{build_id}",
        "BuildNumber": 1,
        "BuildStatus": "SUCCEEDED" if succeeded else failed_status,
        "CurrentPhase": "COMPLETED",
        "ProjectName": project,
        "Logs": {"GroupName": f"/nightcopy/{project}", "StreamName": build_id.split(":")[1],
                 "DeepLink": f"https://console.aws.amazon.com/cloudwatch/home?region={REGION}"},
        "Phases": [{"PhaseType": p, "PhaseStatus": "SUCCEEDED"}
                   for p in ("SUBMITTED", "QUEUED", "PROVISIONING", "INSTALL", "BUILD")],
        "Environment": {"Type": "LINUX_CONTAINER", "Image": "aws/codebuild/standard:7.0",
                        "EnvironmentVariables": [{"Name": "PADDING", "Value": "x" * 2000}]},
    }


class WorkerBuilds:
    """A build runner that runs the real worker (`nightcopy copy`) with the build's environment.

    Records every build: its environment overrides, exit code, stdout JSON events and stderr.
    """

    def __init__(self, project: str, base_env: dict[str, str]):
        self.project = project
        self.base_env = base_env
        self.builds: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, params: dict) -> dict:
        assert params["ProjectName"] == self.project
        overrides = {e["Name"]: e["Value"] for e in params["EnvironmentVariablesOverride"]}
        for e in params["EnvironmentVariablesOverride"]:
            # CodeBuild rejects non-string values; PLAINTEXT keeps secrets out of this list
            assert isinstance(e["Value"], str) and e.get("Type", "PLAINTEXT") == "PLAINTEXT"
        with self._lock:
            code, out, err = run_worker_in_process({**self.base_env, **overrides})
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.builds.append({"env": overrides, "returncode": code, "events": events,
                            "stderr": err})
        return fake_build(self.project, code == 0)

    def for_group(self, group: str) -> list[dict]:
        return [b for b in self.builds if b["env"].get("NIGHTCOPY_GROUP") == group]


def run_worker_in_process(env: dict[str, str]) -> tuple[int, str, str]:
    """`nightcopy copy` as buildspec.yml runs it: no flags, everything from the environment."""
    from nightcopy.cli.main import main

    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rv = main(["copy"], standalone_mode=False)
                code = rv if isinstance(rv, int) else 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception as exc:  # a crash is a failed build, as in CodeBuild
                err.write(f"{type(exc).__name__}: {exc}\n")
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] != "RUNNING":
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"execution still RUNNING after {timeout}s")
        time.sleep(0.2)


def history(sfn: Any, execution_arn: str) -> list[dict]:
    events: list[dict] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events
