"""The Logs Insights queries (saved by template.yaml, run by --from-logs) name only declared
events and fields: a renamed field would otherwise empty a dashboard without any error."""

from __future__ import annotations

import re

import pytest

from nightcopy.aws.logs_queries import SAVED_QUERIES
from nightcopy.engine import event_schema as ev
from nightcopy.ops.history_from_logs import GROUP_FINISH_QUERY

QUERIES = {**SAVED_QUERIES, "group-finish": GROUP_FINISH_QUERY}
DECLARED = {f.name for f in ev.ENVELOPE_HEAD + ev.ENVELOPE_TAIL} | {
    f.name for spec in ev.EVENTS.values() for f in spec.fields}


def _fields_named(query: str) -> set[str]:
    """Event fields a query reads: in `fields`, functions, `by` lists and comparisons."""
    names: set[str] = set()
    for line in query.replace("\\\n", " ").splitlines():
        body = line.strip().lstrip("| ").strip()
        command, _, rest = body.partition(" ")
        rest = re.sub(r'"[^"]*"', "", rest)  # string values are not fields
        if command in ("fields", "stats", "filter", "sort"):
            rest = re.sub(r"\bas \w+", "", rest)  # output names are the query's own
            rest = re.sub(r"\b(asc|desc|and|or|by|latest|avg|max|min|sum|count)\b", " ", rest)
            names |= set(re.findall(r"(?<![@\w])[a-z_]+\b", rest))
    return names


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_queries_read_declared_fields_and_events(name):
    query = QUERIES[name]
    outputs = set(re.findall(r"\bas (\w+)", query))
    fields = _fields_named(query) - outputs
    assert fields, "the parser found nothing"  # the check checks something
    assert fields <= DECLARED, fields - DECLARED
    events = set(re.findall(r'\bevent = "(\w+)"', query))
    assert events and events <= set(ev.EVENTS), events - set(ev.EVENTS)
