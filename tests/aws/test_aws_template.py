"""template.yaml's structure: what moto cannot execute (IAM, alarms, schedule, saved queries).

scripts/lint-aws runs the real validators (sam validate --lint, cfn-lint, statelint, checkov,
sam build); these tests pin down the decisions those tools do not know about.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import tomllib

import pytest
from aws_harness import ROOT

from nightcopy.aws import logs_queries as queries

spec = importlib.util.spec_from_file_location("asl_substitute", ROOT / "scripts" / "asl_substitute.py")
asl_substitute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(asl_substitute)
Tag = asl_substitute.Tag

TEMPLATE = asl_substitute.load_template(ROOT / "template.yaml")
RES = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, dict]:
    return {k: v for k, v in RES.items() if v["Type"] == kind}


def statements(resource: dict) -> list[dict]:
    props = resource["Properties"]
    out: list[dict] = []
    if "Policies" in props and resource["Type"] == "AWS::IAM::Role":
        for p in props["Policies"]:
            out.extend(p["PolicyDocument"]["Statement"])
    else:
        for p in props.get("Policies", []):
            out.extend(p.get("Statement", []))
    # conditional statements: !If [cond, statement, AWS::NoValue]
    return [s.value[1] if isinstance(s, Tag) and s.tag == "If" else s for s in out]


def test_saved_queries_are_the_ones_in_queries_py():
    defs = of_type("AWS::Logs::QueryDefinition")
    by_suffix = {v["Properties"]["Name"].value.rsplit("/", 1)[-1]: v["Properties"]
                 for v in defs.values()}
    assert by_suffix["table-timings"]["QueryString"] == queries.TABLE_TIMINGS_QUERY
    assert by_suffix["slowest-tables"]["QueryString"] == queries.SLOWEST_TABLES_QUERY
    assert by_suffix["failures"]["QueryString"] == queries.FAILURES_QUERY
    assert set(by_suffix) == {name.rsplit("/", 1)[-1] for name in queries.SAVED_QUERIES}
    for props in by_suffix.values():  # on the worker's log group
        assert props["LogGroupNames"][0].value == "WorkerLogGroup"


def test_queries_use_the_worker_event_fields():
    assert 'filter event = "table_copied"' in queries.TABLE_TIMINGS_QUERY
    for field in ("run_id", "group", "table", "rows", "bytes", "seconds", "copy_seconds",
                  "index_seconds"):
        assert re.search(rf"\b{field}\b", queries.TABLE_TIMINGS_QUERY)
    assert "by table" in queries.SLOWEST_TABLES_QUERY
    assert '"table_failed"' in queries.FAILURES_QUERY and '"run_summary"' in queries.FAILURES_QUERY


def test_state_machine_definition_comes_from_the_asl_file_with_substitutions():
    (sm_id, sm), = of_type("AWS::Serverless::StateMachine").items()
    props = sm["Properties"]
    assert "Definition" not in props and props["DefinitionUri"] == "statemachines/nightcopy.asl.json"
    assert props["Type"] == "STANDARD"  # idempotent StartExecution by name
    text = asl_substitute.substituted_definitions(ROOT / "template.yaml")[sm_id]
    asl = json.loads(text)
    assert asl["States"]["Settings"]["Parameters"]["concurrency.$"] == \
        "States.StringToJson('4')"  # the parameter's default, still an integer once parsed
    # a night that hangs ends (and alarms) before the next one starts
    assert 0 < asl["TimeoutSeconds"] < 24 * 3600
    task = asl["States"]["RunGroups"]["ItemProcessor"]["States"]["CopyGroup"]
    assert task["Resource"] == "arn:aws:states:::codebuild:startBuild.sync"
    assert task["TimeoutSecondsPath"] == "$.build_timeout"
    timeout = props["DefinitionSubstitutions"]["BuildTaskTimeoutSeconds"]  # minutes x 100 s
    assert timeout.tag == "Join" and timeout.value[0] == ""
    assert timeout.value[1][0].value == "BuildTimeoutMinutes" and timeout.value[1][1] == "00"
    retries = {tuple(r["ErrorEquals"]): r for r in task["Retry"]}
    assert retries[("States.TaskFailed",)]["MaxAttempts"] == 1
    assert retries[("CodeBuild.AccountLimitExceededException",
                    "CodeBuild.CodeBuildException")]["BackoffRate"] == 2.0
    # secrets never in the overrides: only names and lists
    names = [e["Name"] for e in task["Parameters"]["EnvironmentVariablesOverride"]]
    assert names == ["NIGHTCOPY_GROUP", "NIGHTCOPY_TABLES", "NIGHTCOPY_RUN_ID",
                     "NIGHTCOPY_SSM_PREFIX", "NIGHTCOPY_REPORT_URI"]


def test_build_timeout_default_is_above_codebuild_default():
    p = TEMPLATE["Parameters"]["BuildTimeoutMinutes"]
    assert p["Default"] > 60 and p["MaxValue"] == 2160
    project = RES["WorkerProject"]["Properties"]
    assert project["TimeoutInMinutes"].value == "BuildTimeoutMinutes"
    # the task waits 100 s per build minute: build timeout + the whole queue time fit in it
    assert p["MinValue"] * 100 >= p["MinValue"] * 60 + project["QueuedTimeoutInMinutes"] * 60


def test_no_wildcard_resource_where_a_narrower_one_exists():
    allowed_star = {"VpcNetworkInterfaces", "EcrLogin"}  # APIs without resource-level ARNs
    for logical_id, res in RES.items():
        if res["Type"] not in ("AWS::IAM::Role", "AWS::Serverless::Function",
                               "AWS::Serverless::StateMachine"):
            continue
        for st in statements(res):
            if st.get("Resource") == "*":
                assert st["Sid"] in allowed_star, (logical_id, st)
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any(a.endswith(":*") or a == "*" for a in actions), (logical_id, st)


def test_sync_integration_permissions_and_kms():
    sm = statements(RES["StateMachine"])
    by_sid = {s["Sid"]: s for s in sm}
    assert set(by_sid["RunWorkers"]["Action"]) == {
        "codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds",
        "codebuild:BatchGetReports"}
    assert set(by_sid["SyncBuildCompletionRule"]["Action"]) == {
        "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert by_sid["SyncBuildCompletionRule"]["Resource"].value.endswith(
        ":rule/StepFunctionsGetEventForCodeBuildStartBuildRule")
    worker = {s["Sid"]: s for s in statements(RES["WorkerRole"])}
    decrypt = worker["DecryptSecureStrings"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]
    assert worker["ReadSettings"]["Resource"].value.endswith("parameter${SsmPrefix}/*")
    assert worker["WriteReports"]["Action"] == "s3:PutObject"
    notifier = {s["Sid"]: s for s in statements(RES["NotifierFunction"])}
    assert notifier["DecryptSlackSettings"]["Action"] == "kms:Decrypt"


def test_alarms():
    failed = RES["FailedAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in failed["Metrics"]}
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values()
             if "MetricStat" in m}
    assert names == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for m in metrics.values():
        if "MetricStat" in m:
            assert m["MetricStat"]["Metric"]["Namespace"] == "AWS/States"
            assert m["MetricStat"]["Metric"]["Dimensions"][0]["Name"] == "StateMachineArn"
            assert m["ReturnData"] is False
    assert metrics["problems"]["Expression"] == \
        "FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)"
    assert failed["TreatMissingData"] == "notBreaching"
    deadman = RES["NoSuccessAlarm"]["Properties"]
    assert deadman["MetricName"] == "ExecutionsSucceeded"
    assert deadman["Period"] == 3600 and deadman["EvaluationPeriods"] == 26
    assert deadman["DatapointsToAlarm"] == 26 and deadman["TreatMissingData"] == "breaching"
    lambdas = RES["LambdaErrorsAlarm"]["Properties"]
    assert {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"].value
            for m in lambdas["Metrics"] if "MetricStat" in m} == {"StarterFunction",
                                                                   "NotifierFunction"}
    for alarm in ("FailedAlarm", "NoSuccessAlarm", "LambdaErrorsAlarm"):
        assert RES[alarm]["Properties"]["AlarmActions"][0].value == "AlarmTopic"
    # the notifier tells the dead-man alarm apart by its name
    assert RES["NotifierFunction"]["Properties"]["Environment"]["Variables"][
        "DEADMAN_ALARM_NAME"].value == deadman["AlarmName"].value
    assert RES["NotifierFunction"]["Properties"]["Environment"]["Variables"][
        "FAILED_ALARM_NAME"].value == failed["AlarmName"].value
    assert RES["NotifierFunction"]["Properties"]["Events"]["Alarm"]["Type"] == "SNS"


def test_schedule_names_the_day_from_the_scheduled_time():
    event = RES["StarterFunction"]["Properties"]["Events"]["Nightly"]
    assert event["Type"] == "ScheduleV2"
    props = event["Properties"]
    assert props["ScheduleExpressionTimezone"].value == "ScheduleTimezone"
    assert json.loads(props["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}


def test_lambdas_match_the_project_python_and_stay_small():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.11"
    assert pyproject["project"]["requires-python"] == ">=3.11"
    for fn, folder in (("NotifierFunction", "notifier"), ("StarterFunction", "starter")):
        props = RES[fn]["Properties"]
        assert props["CodeUri"] == f"{folder}/" and props["Handler"] == "app.handler"
        for path in (ROOT / folder).glob("*.py"):
            tree = ast.parse(path.read_text())
            imported = {a.name.split(".")[0] for n in ast.walk(tree)
                        if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                         if isinstance(n, ast.ImportFrom) and n.module}
            assert not imported & {"psycopg2", "nightcopy"}, path
    pins = (ROOT / "notifier" / "requirements.txt").read_text().split()
    assert "slack-sdk==3.47.0" in pins and "slack-sdk==3.47.0" in pyproject["project"][
        "dependencies"]


def test_samconfig_has_default_and_prod():
    cfg = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert cfg["default"]["global"]["parameters"]["stack_name"] == "nightcopy"
    assert cfg["prod"]["global"]["parameters"]["stack_name"] == "nightcopy-prod"
    for env in ("default", "prod"):
        assert cfg[env]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"


@pytest.mark.parametrize("missing", ["ProjectName", "SsmPrefix"])
def test_substitution_check_catches_a_missing_placeholder(tmp_path, missing):
    text = (ROOT / "template.yaml").read_text()
    text = re.sub(rf"\n        {missing}: [^\n]*", "", text, count=1)
    (tmp_path / "template.yaml").write_text(text)
    (tmp_path / "statemachines").mkdir()
    (tmp_path / "statemachines" / "nightcopy.asl.json").write_text(
        (ROOT / "statemachines" / "nightcopy.asl.json").read_text())
    with pytest.raises(SystemExit, match=f"no substitution for .*{missing}"):
        asl_substitute.substituted_definitions(tmp_path / "template.yaml")


def test_build_overrides_are_options_the_worker_reads():
    """The state machine configures the worker only through environment variables: each one it
    sets must be one `nightcopy copy` reads (a renamed option would silently be ignored)."""
    from nightcopy.cli.copy_command import copy_command

    worker_env = {p.envvar for p in copy_command.params if p.envvar}
    asl = json.loads((ROOT / "statemachines" / "nightcopy.asl.json").read_text())
    task = asl["States"]["RunGroups"]["ItemProcessor"]["States"]["CopyGroup"]
    names = {e["Name"] for e in task["Parameters"]["EnvironmentVariablesOverride"]}
    assert names <= worker_env, names - worker_env
    assert {"NIGHTCOPY_SOURCE_DSN", "NIGHTCOPY_TARGET_DSN"} & names == set()


def test_buildspecs_run_the_worker_without_flags():
    import yaml

    spec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    assert spec["phases"]["install"]["runtime-versions"]["python"] == 3.11
    assert spec["phases"]["build"]["commands"][-1].endswith("nightcopy copy")
    inline = RES["WorkerProject"]["Properties"]["Source"].value[2]["BuildSpec"]
    assert yaml.safe_load(inline)["phases"]["build"]["commands"] == ["nightcopy copy"]


def test_lambda_apps_also_import_as_installed_packages(tmp_path):
    import subprocess
    import sys

    # a fresh interpreter outside the Lambda folders: only the installed packages are there
    code = "import nightcopy_notifier.app as n, nightcopy_starter.app as s; print(n.handler, s.handler)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert proc.returncode == 0, proc.stderr
