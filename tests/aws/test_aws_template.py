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
from nightcopy.aws.ssm import PARAMETERS, WORKER_PARAMETERS

spec = importlib.util.spec_from_file_location("asl_substitute", ROOT / "scripts" / "asl_substitute.py")
asl_substitute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(asl_substitute)
Tag = asl_substitute.Tag

TEMPLATE = asl_substitute.load_template(ROOT / "template.yaml")
RES = TEMPLATE["Resources"]
PARAMETER_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmPrefix}"
WORKER_PARAMETER_ARNS = {f"{PARAMETER_ARN}/{name}" for name in WORKER_PARAMETERS}


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
            if isinstance(p, dict):  # not a managed policy (!Ref)
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
    # no blanket retry of a failed build (it would rerun a TIMED_OUT or STOPPED one): the
    # Catch -> MayRetry -> ReadWorkerReport -> IsRetryable loop decides, once
    assert ("States.TaskFailed",) not in retries
    assert retries[("CodeBuild.AccountLimitExceededException",
                    "CodeBuild.CodeBuildException")]["BackoffRate"] == 2.0
    # secrets never in the overrides: only names and lists
    names = [e["Name"] for e in task["Parameters"]["EnvironmentVariablesOverride"]]
    assert names == ["NIGHTCOPY_GROUP", "NIGHTCOPY_TABLES", "NIGHTCOPY_RUN_ID",
                     "NIGHTCOPY_SSM_PREFIX", "NIGHTCOPY_REPORT_URI",
                     "NIGHTCOPY_EXECUTION_OPTIONS"]


def test_build_timeout_default_is_above_codebuild_default():
    p = TEMPLATE["Parameters"]["BuildTimeoutMinutes"]
    assert p["Default"] > 60 and p["MaxValue"] == 2160
    project = RES["WorkerProject"]["Properties"]
    assert project["TimeoutInMinutes"].value == "BuildTimeoutMinutes"
    # the task waits 100 s per build minute: build timeout + the whole queue time fit in it
    assert p["MinValue"] * 100 >= p["MinValue"] * 60 + project["QueuedTimeoutInMinutes"] * 60


def test_no_wildcard_resource_where_a_narrower_one_exists():
    allowed_star = {"VpcDescribe", "EcrLogin"}  # APIs without resource-level ARNs
    for logical_id, res in RES.items():
        if res["Type"] not in ("AWS::IAM::Role", "AWS::Serverless::Function",
                               "AWS::Serverless::StateMachine"):
            continue
        for st in statements(res):
            if st.get("Resource") == "*":
                assert st["Sid"] in allowed_star, (logical_id, st)
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                # only read-only calls: nothing that creates or deletes takes "*"
                assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in actions), st
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any(a.endswith(":*") or a == "*" for a in actions), (logical_id, st)


def test_sync_integration_permissions_and_kms():
    sm = statements(RES["StateMachine"])
    by_sid = {s["Sid"]: s for s in sm}
    # no dead grant: startBuild.sync never reads test reports (BatchGetReports)
    assert set(by_sid["RunWorkers"]["Action"]) == {
        "codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"}
    # the retry decision reads a failed worker's report, and nothing else of the bucket
    assert by_sid["ReadFailedWorkerReports"]["Action"] == "s3:GetObject"
    assert by_sid["ReadFailedWorkerReports"]["Resource"].value.endswith("/reports/*")
    assert set(by_sid["SyncBuildCompletionRule"]["Action"]) == {
        "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert by_sid["SyncBuildCompletionRule"]["Resource"].value.endswith(
        ":rule/StepFunctionsGetEventForCodeBuildStartBuildRule")
    worker = {s["Sid"]: s for s in statements(RES["WorkerRole"])}
    decrypt = worker["DecryptSecureStrings"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]
    assert {r.value for r in worker["ReadSettings"]["Resource"]} == WORKER_PARAMETER_ARNS
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
    assert deadman["MetricName"] == "ExecutionsStarted"
    assert RES["NoSuccessAlarm"]["Condition"] == "ScheduleEnabled"
    assert deadman["Period"] == 3600 and deadman["EvaluationPeriods"] == 26
    assert deadman["DatapointsToAlarm"] == 26 and deadman["TreatMissingData"] == "missing"
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
    # AL2023's python3.13 (python3.11 runs on AL2, deprecated 2027-06-30); the project itself
    # still supports 3.11, so the Lambdas' code stays 3.11-compatible
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
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
    from nightcopy.aws.execution_input import EXECUTION_OPTIONS_VARIABLE
    from nightcopy.cli.copy_command import copy_command

    # the flags' variables, and the execution input's options (read by the worker itself)
    worker_env = {p.envvar for p in copy_command.params if p.envvar} | {
        EXECUTION_OPTIONS_VARIABLE}
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


# ---------------------------------------------------------------- security (docs/security.md)


def test_worker_reads_and_decrypts_only_its_own_parameters():
    assert set(WORKER_PARAMETERS) == {"source_dsn", "target_dsn", "table_groups", "options",
                                      "mask_key"}
    assert not {p for p in WORKER_PARAMETERS if p.startswith("slack_")}
    worker = {s["Sid"]: s for s in statements(RES["WorkerRole"])}
    assert worker["ReadSettings"]["Action"] == "ssm:GetParameters"  # what load_config calls
    assert {r.value for r in worker["ReadSettings"]["Resource"]} == WORKER_PARAMETER_ARNS
    condition = worker["DecryptSecureStrings"]["Condition"]
    assert set(condition) == {"StringEquals"}  # no StringLike wildcard over the prefix
    assert {r.value for r in condition["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"]} \
        == WORKER_PARAMETER_ARNS
    for st in statements(RES["WorkerRole"]):  # nothing else reaches the prefix
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for r in resources:
            text = r.value if isinstance(r, Tag) else r
            assert not (isinstance(text, str) and "${SsmPrefix}/*" in text), st["Sid"]


def test_worker_asks_ssm_only_for_what_its_role_allows(monkeypatch):
    """GetParameters fails as a whole when one name is not allowed: `nightcopy copy` must ask
    for exactly the parameters the template lets the worker read."""
    from nightcopy.aws import ssm
    from nightcopy.cli import copy_command

    asked: list[str] = []

    class RecordingSsm:
        def get_parameters(self, Names, WithDecryption):
            asked.extend(Names)
            return {"Parameters": [
                {"Name": "/nightcopy/prod/source_dsn", "Value": "postgresql://s/db"},
                {"Name": "/nightcopy/prod/target_dsn", "Value": "postgresql://t/db"}]}

    monkeypatch.setattr(ssm, "aws_client", lambda *args, **kwargs: RecordingSsm())
    copy_command._resolve({"ssm_prefix": "/nightcopy/prod", "tables": "public.orders"})
    assert sorted(asked) == sorted(f"/nightcopy/prod/{p}" for p in WORKER_PARAMETERS)
    assert set(PARAMETERS) - set(WORKER_PARAMETERS) == {
        "slack_webhook_url", "slack_bot_token", "slack_channel"}


def test_worker_network_interfaces_only_in_the_stack_vpc():
    worker = {s["Sid"]: s for s in statements(RES["WorkerRole"])}
    eni = worker["VpcNetworkInterfaces"]
    assert set(eni["Action"]) == {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"}
    assert {r.value.rsplit(":", 1)[-1] for r in eni["Resource"]} == {
        "network-interface/*", "subnet/*", "security-group/*"}
    assert eni["Condition"]["ArnEquals"]["ec2:Vpc"].value.endswith(":vpc/${VpcId}")
    permission = worker["VpcNetworkInterfacePermission"]
    assert permission["Condition"]["StringEquals"]["ec2:AuthorizedService"] == \
        "codebuild.amazonaws.com"
    assert permission["Condition"]["ArnEquals"]["ec2:Vpc"].value.endswith(":vpc/${VpcId}")


def test_only_the_worker_project_can_assume_the_worker_role():
    (trust,) = RES["WorkerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"].value.endswith(
        ":project/${AWS::StackName}-worker")
    assert RES["WorkerProject"]["Properties"]["Name"].value == "${AWS::StackName}-worker"


# The StartBuild fields through which a caller could run other code, or the same code elsewhere,
# as the worker's role; each must be denied by its own statement (keys in one condition AND).
DANGEROUS_OVERRIDE_KEYS = {
    "codebuild:source.buildspec", "codebuild:source", "codebuild:source.location",
    "codebuild:secondarySources", "codebuild:environment.image",
    "codebuild:environment.privilegedMode", "codebuild:serviceRole",
    "codebuild:environment.registryCredential", "codebuild:logsConfig",
}


def test_worker_builds_cannot_be_started_with_overrides():
    guard = RES["WorkerStartGuardPolicy"]
    assert guard["Type"] == "AWS::IAM::ManagedPolicy"
    denies = [s for s in guard["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny"]
    for st in denies:
        assert st["Resource"].tag == "GetAtt" and st["Resource"].value == "WorkerProject.Arn"
    null_keys = set()
    for st in denies:
        if "Null" in st.get("Condition", {}):
            assert st["Action"] == "codebuild:StartBuild"
            assert list(st["Condition"]) == ["Null"] and len(st["Condition"]["Null"]) == 1
            ((key, value),) = st["Condition"]["Null"].items()
            assert value == "false"  # "the request carries this field"
            null_keys.add(key)
    assert null_keys >= DANGEROUS_OVERRIDE_KEYS, DANGEROUS_OVERRIDE_KEYS - null_keys
    # environment overrides: only the names the state machine sets
    (env,) = [s for s in denies if "ForAnyValue:StringNotEquals" in s.get("Condition", {})]
    allowed = env["Condition"]["ForAnyValue:StringNotEquals"][
        "codebuild:environment.environmentVariables.name"]
    asl = json.loads((ROOT / "statemachines" / "nightcopy.asl.json").read_text())
    task = asl["States"]["RunGroups"]["ItemProcessor"]["States"]["CopyGroup"]
    assert set(allowed) == {e["Name"] for e in task["Parameters"]["EnvironmentVariablesOverride"]}
    assert not {"NIGHTCOPY_SOURCE_DSN", "NIGHTCOPY_TARGET_DSN"} & set(allowed)
    assert any(s["Action"] == "codebuild:StartBuildBatch" for s in denies)
    # the state machine, the one starter the stack knows of, carries the guard; it is an
    # output so operators attach it to everyone else who may start builds
    policies = RES["StateMachine"]["Properties"]["Policies"]
    assert any(isinstance(p, Tag) and p.tag == "Ref" and p.value == "WorkerStartGuardPolicy"
               for p in policies)
    assert TEMPLATE["Outputs"]["WorkerStartGuardPolicyArn"]["Value"].value == \
        "WorkerStartGuardPolicy"


def test_the_worker_role_cannot_open_debug_sessions():
    """debugSessionEnabled has no condition key: a session needs ssmmessages on the role."""
    for st in statements(RES["WorkerRole"]):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert not any(a.startswith("ssmmessages:") for a in actions), st["Sid"]


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use():
    topic = RES["AlarmTopic"]
    assert topic["Properties"]["KmsMasterKeyId"].value == "AlarmTopicKey"
    skips = {s["id"] for s in topic.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert "CKV_AWS_26" not in skips
    key = RES["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    policy = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    cloudwatch = policy["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # every publisher to the topic in the stack is a CloudWatch alarm
    def refers_to_topic(node) -> bool:
        if isinstance(node, Tag):
            return (node.tag == "Ref" and node.value == "AlarmTopic") or refers_to_topic(node.value)
        if isinstance(node, dict):
            return any(refers_to_topic(v) for v in node.values())
        if isinstance(node, list):
            return any(refers_to_topic(v) for v in node)
        return False

    publishers = {k for k, v in RES.items() if refers_to_topic(v.get("Properties", {}))
                  and k not in ("AlarmEmailSubscription", "NotifierFunction")}  # subscribers
    assert publishers and all(RES[k]["Type"] == "AWS::CloudWatch::Alarm" for k in publishers)
    # and the account keeps administering the key (or it could never be changed or deleted)
    assert policy["AccountAdministersTheKey"]["Principal"]["AWS"].value.endswith(":root")


def test_asl_resource_arns_carry_the_partition():
    """GovCloud and China: every integration ARN is arn:${Partition}:states:::..., with
    Partition = AWS::Partition in the template's DefinitionSubstitutions."""
    text = (ROOT / "statemachines" / "nightcopy.asl.json").read_text()
    assert "arn:aws:" not in text
    resources = re.findall(r'"Resource": "([^"]+)"', text)
    assert resources and all(r.startswith("arn:${Partition}:states:::") for r in resources)
    subs = RES["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert subs["Partition"].tag == "Ref" and subs["Partition"].value == "AWS::Partition"


def test_a_start_that_fails_for_good_is_kept_and_alarms():
    """The Scheduler invokes the starter asynchronously: a failure after Lambda's retries, or a
    delivery the schedule gave up on, lands in one queue, and an alarm mails the first one."""
    starter = RES["StarterFunction"]["Properties"]
    invoke = starter["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2
    assert 60 <= invoke["MaximumEventAgeInSeconds"] <= 21600
    on_failure = invoke["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"].tag == "GetAtt"
    assert on_failure["Destination"].value in ("LostStartsQueue.Arn", ["LostStartsQueue", "Arn"])
    schedule = starter["Events"]["Nightly"]["Properties"]
    assert schedule["DeadLetterConfig"]["Arn"].value == on_failure["Destination"].value
    send = [s for s in statements(RES["StarterFunction"]) if s.get("Sid") == "RecordALostStart"]
    assert send and send[0]["Action"] == "sqs:SendMessage"
    alarm = RES["LostStartAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["TreatMissingData"] == "notBreaching"
    assert alarm["Dimensions"][0]["Value"].value in ("LostStartsQueue.QueueName",
                                                     ["LostStartsQueue", "QueueName"])
    assert [a.value for a in alarm["AlarmActions"]] == ["AlarmTopic"]


def _evaluate(node, params: dict[str, str]):
    """The intrinsic functions the worker's ECR grant uses (Sub with a map, Select, Split,
    Join, Ref), evaluated the way CloudFormation does, over given parameter values."""
    if isinstance(node, list):
        return [_evaluate(item, params) for item in node]
    if not isinstance(node, Tag):
        return node
    if node.tag == "Ref":
        return params[node.value]
    if node.tag == "Sub":
        text, names = (node.value, {}) if isinstance(node.value, str) else node.value
        values = {**params, **{k: _evaluate(v, params) for k, v in names.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)
    args = [_evaluate(a, params) for a in node.value]
    if node.tag == "Select":
        return args[1][int(args[0])]  # IndexError where CloudFormation fails the deploy
    if node.tag == "Split":
        return args[1].split(args[0])
    if node.tag == "Join":
        return args[0].join(args[1])
    raise AssertionError(f"not modelled: {node.tag}")


@pytest.mark.parametrize(("image", "repository"), [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/nightcopy@sha256:" + "a" * 64, "nightcopy"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/nightcopy:0.1.0", "team/nightcopy"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/nc", "nc"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/nightcopy:1", "nightcopy"),
    ("aws/codebuild/standard:7.0", ""),  # WorkerSource=git: the statement is left out anyway
])
def test_the_worker_may_pull_only_from_its_images_own_repository(image, repository):
    """EcrRepositoryName could name another repository than WorkerImage: the grant is derived
    from WorkerImage instead, and evaluates for every value (no deploy error in git mode)."""
    assert "EcrRepositoryName" not in TEMPLATE["Parameters"]
    [pull] = [s for s in statements(RES["WorkerRole"]) if s.get("Sid") == "PullWorkerImage"]
    params = {"WorkerImage": image, "AWS::Partition": "aws", "AWS::Region": "eu-west-1",
              "AWS::AccountId": "123456789012", "AWS::URLSuffix": "amazonaws.com"}
    assert _evaluate(pull["Resource"], params) == (
        f"arn:aws:ecr:eu-west-1:123456789012:repository/{repository}")


def test_rds_iam_grants_exist_only_when_the_stack_is_told_the_database_user():
    """options source_auth/target_auth = rds-iam need rds-db:connect on that one user; a stack
    that does not use it grants nothing (the statements are conditional)."""
    role = RES["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    conditional = {s.value[1]["Sid"]: s.value[0] for s in role
                   if isinstance(s, Tag) and s.tag == "If"}
    assert conditional["SourceIamAuth"] == "SourceUsesIam"
    assert conditional["TargetIamAuth"] == "TargetUsesIam"
    by_sid = {s["Sid"]: s for s in statements(RES["WorkerRole"])}
    for sid, parameter in (("SourceIamAuth", "SourceIamDbUser"),
                           ("TargetIamAuth", "TargetIamDbUser")):
        assert by_sid[sid]["Action"] == "rds-db:connect"
        assert by_sid[sid]["Resource"].value.endswith(f":dbuser:${{{parameter}}}")
        assert TEMPLATE["Parameters"][parameter]["Default"] == ""
    conditions = TEMPLATE["Conditions"]
    assert conditions["SourceUsesIam"].tag == "Not"
