"""Rebalancing: assign tables to K groups so the night (the slowest group) ends sooner.

Each table's cost is its measured copy time over the last nights (ledger in the target), or, for
a table never timed, its size on the source divided by the throughput the timed tables reached.
A group's time is simulated the way the worker runs it: biggest table first, each table on
whichever of its --jobs connections frees up first (with --jobs 1, simply the sum).

Longest processing time first (LPT): sort tables by cost, largest first, and give each to the
group with the least work so far (balancing the sums balances the --jobs times too). Its makespan is at most (4/3 - 1/(3K)) times the optimum
(Graham 1969), it runs in O(n log n), and it keeps the biggest tables apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nightcopy.engine.ledger import LEDGER_SCHEMA, readable_ledger
from nightcopy.engine.table_links import Link, distinct, linked_sets, read_links
from nightcopy.errors import ConfigError, NightcopyError
from nightcopy.ops.group_expansion import ExpandedGroup, expand_groups
from nightcopy.options import JOBS

# Used when no table was ever timed: a cautious single-stream COPY rate between two servers.
DEFAULT_BYTES_PER_SECOND = 40 * 1024 * 1024
# Every table costs a little regardless of size (DDL, ANALYZE, swap): keeps tiny tables from
# looking free, so they still spread out.
PER_TABLE_OVERHEAD_SECONDS = 0.05
MIN_BYTES_FOR_RATE = 1024 * 1024
WORKER_DEFAULT_JOBS = JOBS.default  # `nightcopy copy --jobs` default: tables one worker copies at once
MIN_RATE, MAX_RATE = 1e6, 2e9  # bytes per second: keep estimates within sane bounds


def lpt_assign(costs: dict[str, float], k: int) -> list[list[str]]:
    """Longest processing time first. Deterministic: ties broken by name, then group index."""
    if k < 1:
        raise ConfigError("the number of groups must be at least 1")
    groups: list[list[str]] = [[] for _ in range(k)]
    loads = [0.0] * k
    for table in sorted(costs, key=lambda t: (-costs[t], t)):
        i = min(range(k), key=lambda j: (loads[j], j))
        groups[i].append(table)
        loads[i] += costs[table]
    return groups


def makespan(groups: list[list[str]], costs: dict[str, float]) -> float:
    return max((sum(costs[t] for t in g) for g in groups), default=0.0)


def group_seconds(tables: list[str], costs: dict[str, float], sizes: dict[str, int],
                  jobs: int) -> float:
    """One worker's time for `tables`: biggest (on disk) first, `jobs` tables at once."""
    slots = [0.0] * max(1, min(jobs, len(tables)))
    for table in sorted(tables, key=lambda t: (-sizes.get(t, 0), t)):
        i = min(range(len(slots)), key=lambda j: (slots[j], j))
        slots[i] += costs[table]
    return max(slots)


def lower_bound(costs: dict[str, float], k: int) -> float:
    """No assignment can beat this: the biggest table, or a perfect split of the total."""
    if not costs:
        return 0.0
    return max(max(costs.values()), sum(costs.values()) / k)


@dataclass
class TableCost:
    table: str
    seconds: float
    measured_runs: int  # 0: estimated from size
    size_bytes: int | None
    current_group: str | None


@dataclass
class GroupLoad:
    name: str
    tables: list[str]
    seconds: float


@dataclass
class Plan:
    k: int
    nights: int
    costs: dict[str, TableCost]
    current: list[GroupLoad]
    proposed: list[GroupLoad]
    current_makespan: float
    proposed_makespan: float
    lower_bound: float
    bytes_per_second: float
    warnings: list[str] = field(default_factory=list)
    jobs: int = 1
    split_links: list[Link] = field(default_factory=list)  # the proposal's (--allow-split)
    today_split_links: list[Link] = field(default_factory=list)  # today's groups'

    @property
    def table_groups(self) -> list[dict]:
        """The proposal in the SSM `table_groups` shape (explicit names, biggest first)."""
        return [{"name": g.name, "tables": g.tables} for g in self.proposed]

    def table_groups_json(self) -> str:
        return json.dumps(self.table_groups, separators=(",", ":"), ensure_ascii=False)

    def as_dict(self) -> dict:
        return {
            "groups": self.k,
            "nights": self.nights,
            "jobs": self.jobs,
            "current_makespan_seconds": round(self.current_makespan, 3),
            "proposed_makespan_seconds": round(self.proposed_makespan, 3),
            "lower_bound_seconds": round(self.lower_bound, 3),
            "current": [g.__dict__ for g in self.current],
            "proposed": [g.__dict__ for g in self.proposed],
            "table_groups": self.table_groups,
            "tables": [c.__dict__ for c in self.costs.values()],
            "warnings": self.warnings,
            "split_links": [link.__dict__ for link in self.split_links],
            "today_split_links": [link.__dict__ for link in self.today_split_links],
        }


def measured_seconds(target_conn, tables: list[str], nights: int) -> dict[str, tuple[float, int]]:
    """table -> (average work seconds over its last `nights` successful copies, how many).

    Work time: a copy's seconds less the time it waited for the target's locks. A wait depends on
    the readers of that night, not on the table (a 150-row table that once waited 18 s on a lock
    is not an 18 s table), and the worker copies other tables meanwhile only up to --jobs; the
    waits are shown by `nightcopy timings` (lock wait) for what they are."""
    if readable_ledger(target_conn) is None:  # refuses a ledger newer than this release
        return {}  # no ledger yet: nothing was ever timed here
    with target_conn.cursor() as cur:
        cur.execute(
            f"""SELECT table_name, avg(seconds), count(*)
                  FROM (SELECT table_name,
                               greatest(seconds - coalesce(lock_wait_seconds, 0), 0) AS seconds,
                               row_number() OVER (PARTITION BY table_name
                                                  ORDER BY finished_at DESC) AS n
                          FROM {LEDGER_SCHEMA}.table_results
                         WHERE status = 'copied' AND seconds IS NOT NULL
                           AND table_name = ANY(%s)) recent
                 WHERE n <= %s
                 GROUP BY table_name""",
            (tables, nights),
        )
        rows = cur.fetchall()
    target_conn.rollback()
    return {name: (float(avg), int(n)) for name, avg, n in rows}


def table_sizes(source_conn, tables: list[str]) -> dict[str, int]:
    """On-disk size incl. indexes and TOAST; a partitioned table counts its partitions (the
    parent itself is empty)."""
    sizes: dict[str, int] = {}
    with source_conn.cursor() as cur:
        for table in tables:
            # pg_partition_tree() is empty for a table that is not partitioned.
            cur.execute(
                "SELECT greatest(pg_total_relation_size(%s::regclass),"
                " (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
                "    FROM pg_partition_tree(%s::regclass)))",
                (table, table),
            )
            sizes[table] = int(cur.fetchone()[0])
    source_conn.rollback()
    return sizes


def estimate_costs(expanded: list[ExpandedGroup], measured: dict[str, tuple[float, int]],
                   sizes: dict[str, int]) -> tuple[dict[str, TableCost], float]:
    """Cost per table; never-timed tables are priced by size at the timed tables' throughput."""
    # Only tables big enough for their copy time to be about data, not fixed costs, tell the
    # throughput; a rate from a handful of tiny tables would price a big one absurdly.
    timed = [t for t in measured if sizes.get(t, 0) >= MIN_BYTES_FOR_RATE]
    timed_seconds = sum(measured[t][0] for t in timed)
    timed_bytes = sum(sizes[t] for t in timed)
    rate = timed_bytes / timed_seconds if timed_seconds > 0 else DEFAULT_BYTES_PER_SECOND
    rate = min(max(rate, MIN_RATE), MAX_RATE)
    costs: dict[str, TableCost] = {}
    for group in expanded:
        for table in group.tables:
            if table in costs:
                continue  # in two groups: validate reports it; plan counts it once
            if table in measured:
                seconds, runs = measured[table]
            else:
                seconds, runs = PER_TABLE_OVERHEAD_SECONDS + sizes.get(table, 0) / rate, 0
            costs[table] = TableCost(table, seconds, runs, sizes.get(table), group.name)
    return costs, rate


def _split(assignment: list[list[str]], links: list[Link]) -> list[Link]:
    """The links whose two tables the assignment puts in different groups."""
    group_of = {t: i for i, g in enumerate(assignment) for t in g}
    return [link for link in links if link.a in group_of and link.b in group_of
            and group_of[link.a] != group_of[link.b]]


def _examples(links: list[Link], n: int = 3) -> str:
    shown = "; ".join(f"{link.a} - {link.b} ({link.via})" for link in links[:n])
    return shown + (f"; ...{len(links) - n} more" if len(links) > n else "")


def _assign(seconds: dict[str, float], k: int, links: list[Link], sets: list[list[str]],
            allow_split: bool) -> tuple[list[list[str]], list[Link]]:
    """LPT over the sets of linked tables (each set one item, costing its tables' sum), or over
    single tables with allow_split; and the links the assignment splits."""
    if allow_split:
        assignment = lpt_assign(seconds, k)
        return assignment, _split(assignment, links)
    by_key = {s[0]: s for s in sets}
    assignment = [[t for key in g for t in by_key[key]] for g in lpt_assign(
        {s[0]: sum(seconds[t] for t in s) for s in sets}, k)]
    return assignment, []


def _link_warnings(seconds: dict[str, float], k: int, links: list[Link],
                   sets: list[list[str]], allow_split: bool, split: list[Link],
                   today: list[Link], sizes: dict[str, int], jobs: int) -> list[str]:
    """What keeping linked tables together (or not) means, in at most three lines."""
    out = []
    if today:
        out.append(f"today's groups split {len(today)} link(s) between tables ("
                   f"{_examples(today)}): those foreign keys are not created on the target and "
                   "views over both may join two nights")
    if allow_split:
        if split:
            out.append(f"--allow-split: the proposal splits {len(split)} link(s) ("
                       f"{_examples(split)}): the same holds for them")
        return out
    together = [s for s in sets if len(s) > 1]
    if together:
        alternative = lpt_assign(seconds, k)
        alt = max((group_seconds(g, seconds, sizes, jobs) for g in alternative if g),
                  default=0.0)
        out.append(f"{sum(len(s) for s in together)} tables linked by foreign keys, "
                   f"inheritance or target views are kept together ({len(together)} set(s), "
                   f"the largest of {len(max(together, key=len))} tables); --allow-split would "
                   f"balance them apart (makespan {alt:.2f}s), splitting "
                   f"{len(_split(alternative, links))} link(s)")
    return out


def make_plan(expanded: list[ExpandedGroup], measured: dict[str, tuple[float, int]],
              sizes: dict[str, int], k: int, nights: int, jobs: int = 1,
              links: list[Link] | None = None, allow_split: bool = False) -> Plan:
    if k < 1:
        raise ConfigError("--groups must be at least 1")
    costs, rate = estimate_costs(expanded, measured, sizes)
    if not costs:
        raise NightcopyError("the configured groups contain no tables: nothing to plan")
    seconds = {t: c.seconds for t, c in costs.items()}
    current = [GroupLoad(g.name, g.tables,
                         group_seconds(list(dict.fromkeys(g.tables)), seconds, sizes, jobs))
               for g in expanded]
    links = links or []
    sets = linked_sets(sorted(seconds), links)
    assignment, split = _assign(seconds, k, links, sets, allow_split)
    today = _split([list(dict.fromkeys(g.tables)) for g in expanded], links)
    proposed = sorted(
        (GroupLoad("", tables, group_seconds(tables, seconds, sizes, jobs))
         for tables in assignment if tables),
        key=lambda g: -g.seconds,
    )
    for i, g in enumerate(proposed, 1):
        g.name = f"g{i}"
    warnings = _link_warnings(seconds, k, links, sets, allow_split, split, today, sizes, jobs)
    never = [t for t, c in costs.items() if not c.measured_runs]
    if never:
        warnings.append(
            f"{len(never)} of {len(costs)} tables were never timed here; their cost is estimated "
            f"from their size at {rate / 1e6:.1f} MB/s"
        )
    globbed = [g.name for g in expanded if g.has_globs]
    if globbed:
        warnings.append(
            "globs in group(s) " + ", ".join(globbed) + " were expanded to today's tables: the "
            "proposal names tables explicitly, so tables created later are not picked up "
            "unless you add them (or keep a glob in one group)"
        )
    if len(assignment) > len(costs):
        warnings.append(f"only {len(costs)} tables: fewer than {k} groups are useful")
    return Plan(
        k=k, nights=nights, costs=costs, current=current, proposed=proposed,
        current_makespan=max((g.seconds for g in current), default=0.0),
        proposed_makespan=max((g.seconds for g in proposed), default=0.0),
        lower_bound=lower_bound(seconds, k * jobs), bytes_per_second=rate, warnings=warnings,
        jobs=jobs, split_links=split, today_split_links=today,
    )


def plan_from_config(config, k: int, nights: int, jobs: int | None = None,
                     allow_split: bool = False) -> Plan:
    """Read the source catalog and the target ledger for `config` and propose K groups, keeping
    linked tables together (the source's foreign keys and inheritance, the target's views)
    unless allow_split."""
    from nightcopy.engine.connection import connect

    source = connect(config.source_dsn, "source", "nightcopy plan")
    try:
        expanded = expand_groups(source, config.groups, config.options.get("exclude_table"))
        tables = sorted({t for g in expanded for t in g.tables})
        sizes = table_sizes(source, tables)
        links = read_links(source, tables, views=False)
    finally:
        source.close()
    target = connect(config.target_dsn, "target", "nightcopy plan")
    try:
        measured = measured_seconds(target, tables, nights)
        links += read_links(target, tables, views=True)
    finally:
        target.close()
    jobs = jobs or config.options.get("jobs") or WORKER_DEFAULT_JOBS
    return make_plan(expanded, measured, sizes, k, nights, jobs, distinct(links), allow_split)


def _parameter_name(prefix: str) -> str:
    return prefix.rstrip("/") + "/table_groups"


def write_table_groups(prefix: str, value: str, *, client: Any = None) -> tuple[str, str | None]:
    """Overwrite PREFIX/table_groups; returns (parameter name, the old value or None)."""
    from nightcopy.aws.ssm import overwrite_parameter

    name = _parameter_name(prefix)
    return name, overwrite_parameter(name, value, client=client)
