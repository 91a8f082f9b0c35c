"""Starter Lambda: EventBridge Scheduler -> StartExecution named `nightly-YYYY-MM-DD`.

The schedule's Input is `{"scheduled_time": "<aws.scheduler.scheduled-time>"}`; the date is taken
in SCHEDULE_TIMEZONE. A day that already ran is logged and returns normally (not an error), so
Scheduler does not retry it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3

try:  # the Lambda: CodeUri starter/ is the import root
    from nightly import local_date, start_nightly
except ImportError:  # installed with nightcopy as the package nightcopy_starter
    from nightcopy_starter.nightly import local_date, start_nightly

log = logging.getLogger()
log.setLevel(logging.INFO)

_sfn = None


def _client():
    global _sfn  # created once per container: cold start only
    if _sfn is None:
        _sfn = boto3.client("stepfunctions")
    return _sfn


def handler(event: dict[str, Any] | None, context: Any = None) -> dict[str, Any]:
    event = event or {}
    tz_name = os.environ.get("SCHEDULE_TIMEZONE", "UTC")
    day = local_date(event.get("scheduled_time"), tz_name)
    result = start_nightly(_client(), os.environ["STATE_MACHINE_ARN"], day)
    log.info(json.dumps({"event": "nightly_start", "name": result.name,
                         "outcome": result.outcome, "status": result.status}))
    return {"name": result.name, "executionArn": result.execution_arn,
            "outcome": result.outcome}
