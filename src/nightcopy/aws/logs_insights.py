"""CloudWatch Logs Insights: run one query over a log group and a time range (boto3).

The query texts are in nightcopy.aws.logs_queries (and nightcopy.ops.history_from_logs); turning
the rows into history and timings is nightcopy.ops.history_from_logs's job.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from nightcopy.aws.errors import Problem, aws_call
from nightcopy.aws.errors import client as aws_client
from nightcopy.errors import NightcopyError

# A status after which GetQueryResults will never say Complete.
_ENDED = ("Failed", "Cancelled", "Timeout", "Unknown")


def _messages(log_group: str) -> dict[Problem, str]:
    """What an operator sees when the query cannot run (the log group's name is escaped: it
    is a value here, not part of the template)."""
    group = log_group.replace("{", "{{").replace("}", "}}")
    return {
        Problem.NOT_FOUND: f"log group {group} does not exist in this account/region (see the "
                           "stack's outputs for its name)",
        Problem.REFUSED: f"CloudWatch Logs refused the query on {group}: {{error}}",
        Problem.FAILED: "cannot query CloudWatch Logs: {error}",
    }


def logs_client(client: Any = None) -> Any:
    """The given client (tests pass a stand-in), else boto3's CloudWatch Logs client."""
    return client if client is not None else aws_client("logs")


def run_insights_query(client: Any, log_group: str, query: str, start: datetime,
                       end: datetime, *, timeout: float = 300.0) -> list[dict[str, Any]]:
    """StartQuery + GetQueryResults until complete; rows as {field: value} (no @ptr)."""
    with aws_call(f"querying CloudWatch Logs {log_group}", "logs", _messages(log_group)):
        query_id = client.start_query(
            logGroupName=log_group, queryString=query,
            startTime=int(start.timestamp()), endTime=int(end.timestamp()),
        )["queryId"]
        deadline = time.monotonic() + timeout
        delay = 0.25
        while True:
            response = client.get_query_results(queryId=query_id)
            status = response.get("status")
            if status == "Complete":
                break
            if status in _ENDED:
                raise NightcopyError(f"the Logs Insights query on {log_group} ended {status}")
            if time.monotonic() > deadline:
                raise NightcopyError(f"the Logs Insights query on {log_group} took over "
                                     f"{timeout:.0f}s; try a shorter --days range")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)  # small queries finish in a second; big ones take long
    return [
        {f["field"]: f.get("value") for f in row if f.get("field") != "@ptr"}
        for row in response.get("results", [])
    ]
