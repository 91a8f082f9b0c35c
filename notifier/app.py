"""Notifier Lambda: the night's Slack message.

Two callers:
- the state machine's Notify task, `{"kind": "run_report", "run_id", "execution_name",
  "execution_arn", "groups"}` (`groups` = the Map's trimmed per-group results): reads the
  per-group summaries the workers wrote to the reports bucket and posts the report, or the
  failure with the failed groups. When execution_name differs from run_id the execution
  finished an earlier failed night (`nightly-DATE-fN`): its message names the night it
  completes and the night's final state.
- the alarm topic (SNS): the state machine cannot report an execution that timed out or was
  aborted, nor one that never started, nor one that failed before its Notify step posted (e.g. an
  unreadable table_groups). The alarm does not say which metric fired, so look at the recent
  executions and post only those cases; a failure the state machine posted itself is not
  repeated (exactly one message per night).

Environment: STATE_MACHINE_ARN (alarm path), NIGHTCOPY_SSM_PREFIX (Slack settings, read once per
container), NIGHTCOPY_REPORT_URI (s3://bucket/prefix, as given to the workers),
DEADMAN_ALARM_NAME and FAILED_ALARM_NAME (which alarm is which); optional SLACK_API_BASE_URL
(another Slack API root for the bot-token path, e.g. GovSlack).
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3

try:  # the Lambda: CodeUri notifier/ is the import root
    from slack_message import build_alert, build_finish_report, build_report
    from slack_post import post_report
except ImportError:  # installed with nightcopy as the package nightcopy_notifier
    from nightcopy_notifier.slack_message import build_alert, build_finish_report, build_report
    from nightcopy_notifier.slack_post import post_report

log = logging.getLogger()
log.setLevel(logging.INFO)

ALARM_LOOKBACK = timedelta(hours=1)     # a timed-out/aborted execution that set off this alarm
DEADMAN_WINDOW = timedelta(hours=26)    # matches the dead-man alarm's 26 hourly periods

_slack: dict[str, str] | None = None


def _ssm_prefix() -> str:
    return os.environ["NIGHTCOPY_SSM_PREFIX"].rstrip("/")


def slack_settings() -> dict[str, str]:
    """Webhook URL or bot token + channel from SSM, decrypted; read once per container."""
    global _slack
    if _slack is None:
        prefix = _ssm_prefix()
        names = {f"{prefix}/{k}": k for k in ("slack_webhook_url", "slack_bot_token",
                                              "slack_channel")}
        resp = boto3.client("ssm").get_parameters(Names=list(names), WithDecryption=True)
        _slack = {names[p["Name"]]: p["Value"] for p in resp.get("Parameters", [])}
    return _slack


def reset_cache() -> None:
    """Forget the Slack settings (tests; a real container keeps them for its lifetime)."""
    global _slack
    _slack = None


def _post(message: dict) -> None:
    s = slack_settings()
    post_report(message, webhook_url=s.get("slack_webhook_url"),
                bot_token=s.get("slack_bot_token"), channel=s.get("slack_channel"),
                base_url=os.environ.get("SLACK_API_BASE_URL") or None)


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError("NIGHTCOPY_REPORT_URI must look like s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def read_summaries(run_id: str) -> list[dict]:
    """The per-group report objects (`PREFIX/RUN_ID/GROUP.json`) the workers wrote."""
    uri = os.environ.get("NIGHTCOPY_REPORT_URI")
    if not uri:
        return []
    bucket, prefix = _split_s3(uri)
    key_prefix = f"{prefix}/{run_id}/" if prefix else f"{run_id}/"
    s3 = boto3.client("s3")
    out: list[dict] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out.append(json.loads(body))
    return out


def execution_url(execution_arn: str | None) -> str | None:
    if not execution_arn:
        return None
    region = execution_arn.split(":")[3]
    return (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/v2/executions/details/{execution_arn}")


def build_logs_url(build_id: str | None, region: str) -> str | None:
    """Console link to a CodeBuild build's log (build ids are `project:uuid`)."""
    if not build_id or ":" not in build_id:
        return None
    project = build_id.split(":", 1)[0]
    return (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/projects/"
            f"{quote(project, safe='')}/build/{quote(build_id, safe='')}/log?region={region}")


def _error_text(error: Any) -> str:
    if isinstance(error, dict):  # {"Error", "Cause"} from a Catch
        cause = str(error.get("Cause") or "")
        return f"{error.get('Error', 'error')}: {cause}" if cause else str(error.get("Error"))
    return str(error or "failed")


def handle_run_report(event: dict) -> dict:
    run_id = event["run_id"]
    arn = event.get("execution_arn")
    region = arn.split(":")[3] if arn else os.environ.get("AWS_REGION", "us-east-1")
    groups = event.get("groups") or []
    # SKIPPED: a finishing execution left that group alone (the night copied it before).
    failed = [{"group": g.get("group"), "error": _error_text(g.get("error")),
               "logs_url": g.get("logs_url") or build_logs_url(g.get("build_id"), region)}
              for g in groups if g.get("status") not in ("SUCCEEDED", "SKIPPED")]
    try:
        summaries = read_summaries(run_id)
    except Exception as exc:  # still post: a report without details beats none
        log.warning("could not read the group reports: %s", type(exc).__name__)
        summaries = []
    execution_name = event.get("execution_name") or run_id
    if execution_name != run_id:  # a finishing execution (nightly-DATE-fN) of this night
        message = build_finish_report(
            summaries, run_id=run_id, execution_name=execution_name,
            execution_url=execution_url(arn), failed_groups=failed,
            rerun_groups=[str(g.get("group")) for g in groups if g.get("status") != "SKIPPED"])
    else:
        message = build_report(summaries, run_id=run_id, execution_url=execution_url(arn),
                               failed_groups=failed)
    _post(message)
    log.info(json.dumps({"event": "slack_posted", "run_id": run_id,
                         "failed_groups": [f["group"] for f in failed]}))
    return {"posted": True, "failed_groups": len(failed)}


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    # CloudWatch writes e.g. 2026-11-25T03:05:00.000+0000
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def _recent_executions(sfn: Any, arn: str, since: datetime) -> list[dict]:
    out: list[dict] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for e in page.get("executions", []):  # newest first
            if e["startDate"] < since - DEADMAN_WINDOW:
                return out
            out.append(e)
    return out


def handle_alarm(alarm: dict) -> dict:
    deadman = alarm.get("AlarmName") == os.environ.get("DEADMAN_ALARM_NAME")
    # The dead-man alarm speaks through INSUFFICIENT_DATA (template.yaml: no start in its range
    # leaves no datapoint at all); every other alarm through ALARM.
    if alarm.get("NewStateValue") not in (("ALARM", "INSUFFICIENT_DATA") if deadman
                                          else ("ALARM",)):
        return {"posted": False, "reason": "not an ALARM transition"}
    changed = _parse_time(alarm.get("StateChangeTime"))
    sfn_arn = os.environ["STATE_MACHINE_ARN"]
    executions = _recent_executions(boto3.client("stepfunctions"), sfn_arn, changed)
    if deadman:
        if any(e["startDate"] >= changed - DEADMAN_WINDOW for e in executions):
            # It started; its failure/timeout was (or will be) reported on its own path.
            return {"posted": False, "reason": "an execution started in the window"}
        _post(build_alert("no nightly copy started in the last 26 hours", [
            "The schedule did not start an execution. Check that the schedule is enabled and "
            "the starter Lambda's logs; start one by hand with `nightcopy start`."]))
        return {"posted": True, "alerts": 1}
    failed_alarm = os.environ.get("FAILED_ALARM_NAME")
    if failed_alarm and alarm.get("AlarmName") != failed_alarm:
        # e.g. the Lambda errors alarm: e-mail only; scanning here could repeat a message
        return {"posted": False, "reason": "not an execution alarm"}
    posted = 0
    sfn = boto3.client("stepfunctions")
    for e in executions:
        if e["status"] not in ("TIMED_OUT", "ABORTED", "FAILED"):
            continue
        stopped = e.get("stopDate") or sfn.describe_execution(
            executionArn=e["executionArn"]).get("stopDate")
        # No stop time at all (not seen on AWS): rather report it than miss it.
        if stopped is not None and not (
                changed - ALARM_LOOKBACK <= stopped <= changed + timedelta(minutes=5)):
            continue
        if e["status"] == "FAILED":
            if _reported(sfn, e["executionArn"]):
                continue  # the state machine posted its own failure report
            what, cause = "failed before it could report", _failure_cause(sfn, e)
        else:
            what = "timed out" if e["status"] == "TIMED_OUT" else "was aborted"
            cause = ""
        try:
            reports = read_summaries(e["name"])
        except Exception:
            reports = []
        done = sorted(str(r.get("group")) for r in reports)
        lines = [f"The execution {e['name']} {what}; no report could be posted for it."]
        if cause:
            lines.append(cause)
        night = re.match(r"nightly-(\d{4}-\d{2}-\d{2})", e["name"])
        lines += [f"Groups that finished and wrote a report: {', '.join(done) or 'none'}.",
                  "Tables a worker finished stay copied; "
                  + (f"`nightcopy start --finish {night.group(1)}` finishes the night (its "
                     "unfinished groups, under its run id)." if night else
                     "`nightcopy start --rerun` copies the day again.")]
        _post(build_alert(f"nightcopy {e['name']} {what}", lines,
                          execution_url=execution_url(e["executionArn"])))
        posted += 1
    return {"posted": posted > 0, "alerts": posted}


def _reported(sfn: Any, execution_arn: str) -> bool:
    """Did the execution's Notify state post its message? (Its output carries notify.posted.)"""
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn, reverseOrder=True)
    for page in pages:
        for event in page["events"]:
            details = event.get("stateExitedEventDetails") or {}
            if details.get("name") == "Notify":
                try:
                    out = json.loads(details.get("output") or "{}")
                except ValueError:
                    return False
                return bool((out.get("notify") or {}).get("posted"))
    return False


def _failure_cause(sfn: Any, execution: dict) -> str:
    desc = sfn.describe_execution(executionArn=execution["executionArn"])
    error, cause = desc.get("error") or "", (desc.get("cause") or "")[:500]
    return f"{error}: {cause}".strip(": ") if error or cause else ""


def handler(event: dict, context: Any = None) -> dict:
    if event.get("kind") == "run_report":
        return handle_run_report(event)
    results = []
    for record in event.get("Records", []):
        if record.get("EventSource") == "aws:sns" or "Sns" in record:
            results.append(handle_alarm(json.loads(record["Sns"]["Message"])))
    if not results:
        raise ValueError("unknown event: expected a run report or an SNS alarm")
    return {"posted": any(r.get("posted") for r in results), "results": results}
