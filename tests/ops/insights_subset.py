"""A small interpreter of the Logs Insights commands nightcopy's queries use, so the tests run
the query text itself over the worker's real JSON lines instead of trusting it.

Supported (and nothing else: anything else is a syntax error here, so a query that drifts past
this subset fails its test and gets a deliberate look): `fields a, b`, `filter` with `=`/`!=`
comparisons of a field to a string or number joined by `and`/`or`/parentheses, `stats` with
`latest`, `max`, `min`, `avg`, `sum`, `count(*)` / `count(f)` `as name`, `by f1, f2`,
`sort f asc|desc`, `limit N`. Values come back as strings, as StartQuery/GetQueryResults give
them; @timestamp prints as 'YYYY-MM-DD HH:MM:SS.mmm' (UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>!=|=|\(|\))|'
                    r"(?P<name>@?[A-Za-z_][A-Za-z0-9_]*))")
_AGG = re.compile(r"^(latest|max|min|avg|sum|count)\((\*|@?[A-Za-z_]\w*)\)\s+as\s+([A-Za-z_]\w*)$")


class InsightsSyntaxError(AssertionError):
    pass


def _filter(expr: str):
    tokens, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise InsightsSyntaxError(f"cannot parse filter at {expr[pos:]!r}")
        tokens.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()

    def parse_or(i):
        left, i = parse_and(i)
        while i < len(tokens) and tokens[i] == ("name", "or"):
            right, i = parse_and(i + 1)
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left, i

    def parse_and(i):
        left, i = parse_atom(i)
        while i < len(tokens) and tokens[i] == ("name", "and"):
            right, i = parse_atom(i + 1)
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left, i

    def parse_atom(i):
        if tokens[i] == ("op", "("):
            inner, i = parse_or(i + 1)
            if tokens[i] != ("op", ")"):
                raise InsightsSyntaxError(f"missing ) in {expr!r}")
            return inner, i + 1
        (kind, field), (_, op), (vkind, value) = tokens[i:i + 3]
        if kind != "name" or op not in ("=", "!=") or vkind not in ("str", "num"):
            raise InsightsSyntaxError(f"unsupported comparison in {expr!r}")
        want = value[1:-1] if vkind == "str" else float(value)

        def test(r, field=field, want=want, op=op):
            got = r.get(field)
            if isinstance(want, float):
                got = float(got) if isinstance(got, int | float) else None
            return (got == want) == (op == "=")
        return test, i + 3

    predicate, end = parse_or(0)
    if end != len(tokens):
        raise InsightsSyntaxError(f"trailing tokens in filter {expr!r}")
    return predicate


def _fmt(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_query(query: str, events: list[dict]) -> list[dict[str, str]]:
    """`events`: the worker's JSON objects; their `ts` (epoch seconds) becomes @timestamp."""
    rows = [{**e, "@timestamp": datetime.fromtimestamp(e["ts"], tz=UTC)} for e in events]
    for command in re.split(r"\n\|\s*", query.strip()):
        verb, _, rest = command.strip().partition(" ")
        rest = " ".join(rest.split())
        if verb == "fields":
            names = [n.strip() for n in rest.split(",")]
            if not all(re.fullmatch(r"@?[A-Za-z_]\w*", n) for n in names):
                raise InsightsSyntaxError(f"bad fields list {rest!r}")
        elif verb == "filter":
            predicate = _filter(rest)
            rows = [r for r in rows if predicate(r)]
        elif verb == "stats":
            aggs_text, _, by_text = rest.partition(" by ")
            by = [b.strip() for b in by_text.split(",")] if by_text else []
            aggs = []
            for part in aggs_text.split(", "):
                m = _AGG.match(part.strip())
                if not m:
                    raise InsightsSyntaxError(f"unsupported stats expression {part!r}")
                aggs.append(m.groups())
            groups: dict[tuple, list[dict]] = {}
            for r in rows:
                groups.setdefault(tuple(r.get(b) for b in by), []).append(r)
            out = []
            for key, members in groups.items():
                row = dict(zip(by, key, strict=True))
                for func, field, name in aggs:
                    values = members if field == "*" else [
                        m[field] for m in members if m.get(field) is not None]
                    if func == "count":
                        row[name] = len(values)
                    elif not values:
                        row[name] = None
                    elif func == "latest":
                        row[name] = max((m for m in members if field in m),
                                        key=lambda m: m["@timestamp"])[field]
                    elif func == "avg":
                        row[name] = sum(values) / len(values)
                    else:
                        row[name] = {"max": max, "min": min, "sum": sum}[func](values)
                out.append(row)
            rows = out
        elif verb == "sort":
            field, _, direction = rest.partition(" ")
            if direction not in ("asc", "desc") or not rows or field not in rows[0]:
                if rows and field not in rows[0]:
                    raise InsightsSyntaxError(f"sort by unknown field {field!r}")
                if direction not in ("asc", "desc"):
                    raise InsightsSyntaxError(f"bad sort {rest!r}")
            rows.sort(key=lambda r: r[field], reverse=direction == "desc")
        elif verb == "limit":
            rows = rows[:int(rest)]
        else:
            raise InsightsSyntaxError(f"unsupported command {verb!r}")
    return [{k: _fmt(v) for k, v in r.items() if v is not None} for r in rows]


class InsightsClient:
    """A boto3 `logs` client stand-in that runs each query over the given events."""

    def __init__(self, events: list[dict]):
        self.events = events
        self.started: list[dict] = []

    def start_query(self, **kwargs):
        self.started.append(kwargs)
        return {"queryId": str(len(self.started) - 1)}

    def get_query_results(self, queryId):  # noqa: N803 - boto3's parameter name
        args = self.started[int(queryId)]
        inside = [e for e in self.events if args["startTime"] <= e["ts"] <= args["endTime"]]
        rows = run_query(args["queryString"], inside)
        return {"status": "Complete", "results": [
            [{"field": k, "value": v} for k, v in r.items()] + [{"field": "@ptr", "value": "p"}]
            for r in rows]}
