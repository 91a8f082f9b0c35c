"""CloudWatch Logs Insights queries over the worker's JSON lines (one event per table).

These strings are the single source of truth: template.yaml's saved AWS::Logs::QueryDefinition
resources carry exactly the same text (tests/aws/test_template.py asserts it), and
`nightcopy timings --from-logs` runs them through StartQuery.

A saved query has no time range: the reader picks it in the console (see docs/aws.md):
TABLE_TIMINGS_QUERY -> the night in question (e.g. last 12 hours), SLOWEST_TABLES_QUERY -> 7 days,
FAILURES_QUERY -> as far back as needed (7 days by default).

Field names follow the worker's events (docs/events.md): JSON keys become Logs Insights fields at ingestion.
"""

from __future__ import annotations

# Per-table timing of a run. To look at one run only, add `| filter run_id = "nightly-..."`
# after the first line (the console keeps the edit; the saved text stays generic). The latest
# event per (run_id, table) wins, so a retried build does not count a table twice.
TABLE_TIMINGS_QUERY = """\
fields @timestamp, run_id, group, table, rows, bytes, seconds, copy_seconds, index_seconds
| filter event = "table_copied"
| stats latest(seconds) as seconds, latest(copy_seconds) as copy_seconds, \
latest(index_seconds) as index_seconds, latest(rows) as rows, latest(bytes) as bytes \
by run_id, group, table
| sort seconds desc
| limit 1000"""

# Slowest tables over several nights (pick 7 days): where rebalancing groups pays off.
SLOWEST_TABLES_QUERY = """\
filter event = "table_copied"
| stats avg(seconds) as avg_seconds, max(seconds) as max_seconds, avg(rows) as avg_rows, \
count(*) as nights by table, group
| sort avg_seconds desc
| limit 50"""

# Failed tables and failed runs with their error text (never contains secrets: the worker
# redacts them before printing).
FAILURES_QUERY = """\
fields @timestamp, run_id, group, table, error, failed_tables
| filter event = "table_failed" or (event = "run_summary" and status = "failed")
| sort @timestamp desc
| limit 200"""

# Name (console folder "nightcopy/") -> query text, as saved by template.yaml.
SAVED_QUERIES: dict[str, str] = {
    "nightcopy/table-timings": TABLE_TIMINGS_QUERY,
    "nightcopy/slowest-tables": SLOWEST_TABLES_QUERY,
    "nightcopy/failures": FAILURES_QUERY,
}
