"""A world for killing workers: tables whose old (target) and new (source) versions differ in
every table, hooks that hold a worker at a chosen point, and the checks run after each kill.

Hooks (no code in the engine, only the database and the network):
- COPY: the source is reached through a TcpProxy that slows the stream down;
- index build / ANALYZE: t_idx has an expression index on public.nc_slow(id), an IMMUTABLE
  function (on both sides) that sleeps per row as long as the target database's nc.slow
  setting says (`slow_index`; 0 otherwise);
- swap: a reader transaction holding ACCESS SHARE on the target table makes the swap wait;
- ledger write (after the swap's statements, before its commit): a session holding EXCLUSIVE on
  nightcopy.table_results makes the worker's INSERT of its result row wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from rel_tools import (
    TcpProxy,
    Worker,
    backends,
    check_output,
    ledger_text,
    staged_leftovers,
    table_checksum,
    unix_socket_of,
    wait_for,
    with_password,
)

TABLES = ["public.t_big", "public.t_idx", "public.t_part", "public.t_view", "public.t_plain"]

SLOW_FN = """
CREATE FUNCTION public.nc_slow(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM pg_catalog.pg_sleep(coalesce(nullif(pg_catalog.current_setting('nc.slow', true), ''),
                                       '0')::float8);
  RETURN i;
END $$;
"""

SOURCE_SQL = SLOW_FN + """
CREATE TABLE public.t_big (id int PRIMARY KEY, v text, n numeric);
INSERT INTO public.t_big SELECT g, repeat(md5(g::text), 2), g / 7.0 FROM generate_series(1, 12000) g;
CREATE TABLE public.t_idx (id int PRIMARY KEY, v text);
INSERT INTO public.t_idx SELECT g, 'i' || g FROM generate_series(1, 80) g;
CREATE INDEX t_idx_slow ON public.t_idx (public.nc_slow(id));
CREATE TABLE public.t_part (id int, at date NOT NULL, v text) PARTITION BY RANGE (at);
CREATE TABLE public.t_part_a PARTITION OF public.t_part FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.t_part_b PARTITION OF public.t_part FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO public.t_part SELECT g, DATE '2025-03-01' + (g % 600), 'p' || g FROM generate_series(1, 3000) g;
CREATE TABLE public.t_view (id int PRIMARY KEY, grp int, v text);
INSERT INTO public.t_view SELECT g, g % 5, 'w' || g FROM generate_series(1, 2000) g;
CREATE TABLE public.t_plain (id int, v text);
INSERT INTO public.t_plain SELECT g, 'x' || g FROM generate_series(1, 1000) g;
"""

TARGET_SQL = SLOW_FN


def mutate_sql(k: int) -> str:
    """Change every table on the source (version k+1)."""
    return f"""
UPDATE public.t_big SET v = v || '{k}' WHERE id % 11 = {k % 11};
INSERT INTO public.t_big SELECT 100000 * {k + 1} + g, 'new{k}', g FROM generate_series(1, 50) g;
UPDATE public.t_idx SET v = v || '{k}' WHERE id % 3 = 0;
INSERT INTO public.t_part VALUES ({k}, DATE '2025-05-05', 'k{k}'), ({k}, DATE '2026-05-05', 'k{k}');
DELETE FROM public.t_view WHERE id = {k + 1};
UPDATE public.t_view SET v = v || '{k}' WHERE grp = {k % 5};
INSERT INTO public.t_plain VALUES ({-k - 1}, 'k{k}');
"""


@dataclass
class KillWorld:
    source_dsn: str  # admin DSNs (no secret): for the test's own sessions
    target_dsn: str
    workdir: Path
    proxy: TcpProxy
    version: int = 0
    old: dict[str, tuple] = field(default_factory=dict)
    new: dict[str, tuple] = field(default_factory=dict)
    runs: int = 0
    kills: int = 0

    @classmethod
    def build(cls, source_dsn: str, target_dsn: str, workdir: Path, proxy: TcpProxy
              ) -> KillWorld:
        for dsn, sql in ((source_dsn, SOURCE_SQL), (target_dsn, TARGET_SQL)):
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.close()
        w = cls(source_dsn, target_dsn, workdir, proxy)
        # version 0 on the target, as a previous night left it; then a dependent view there
        w.finish("initial")
        w.target_exec("CREATE VIEW public.t_view_report AS SELECT grp, count(*) AS n "
                      "FROM public.t_view GROUP BY grp; "
                      "CREATE ROLE nc_kill_reader; " if not w._role_exists() else
                      "CREATE VIEW public.t_view_report AS SELECT grp, count(*) AS n "
                      "FROM public.t_view GROUP BY grp; ")
        w.target_exec("GRANT SELECT ON public.t_view, public.t_view_report TO nc_kill_reader")
        w.next_version()
        return w

    def _role_exists(self) -> bool:
        conn = psycopg2.connect(self.target_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'nc_kill_reader'")
                return cur.fetchone() is not None
        finally:
            conn.close()

    def slow_index(self, seconds_per_row: float) -> None:
        """New target sessions (the next worker's) build t_idx's index slowly."""
        self.target_exec(f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET nc.slow = %L', "
                         f"current_database(), '{seconds_per_row}'); END $$")

    def target_exec(self, sql: str) -> None:
        conn = psycopg2.connect(self.target_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    # ----------------------------------------------------------------- versions
    def next_version(self) -> None:
        conn = psycopg2.connect(self.source_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(mutate_sql(self.version))
        conn.close()
        self.version += 1
        self.old = {t: table_checksum(self.target_dsn, t) for t in TABLES}
        self.new = {t: table_checksum(self.source_dsn, t) for t in TABLES}
        assert all(self.old[t] != self.new[t] for t in TABLES), "every table must change"

    # ----------------------------------------------------------------- the worker
    def args(self, run_id: str, *extra: str, slow: bool = True) -> list[str]:
        source = self.proxy.dsn(self.source_dsn) if slow else self.source_dsn
        return ["copy", "--source", with_password(source),
                "--target", with_password(self.target_dsn), "--tables", ",".join(TABLES),
                "--run-id", run_id, "--lock-timeout", "0.5", "--lock-attempts", "4",
                # the kill points hold on nc_slow, the test's own function: trusted on purpose
                "--trust", "public.nc_slow", *extra]

    def start(self, run_id: str, *extra: str, slow: bool = True) -> Worker:
        self.runs += 1
        return Worker(self.args(run_id, *extra, slow=slow),
                      self.workdir / f"{run_id}-{self.runs}")

    def finish(self, run_id: str) -> Worker:
        """Run to the end (no kill) from the direct source: fast."""
        w = self.start(run_id, slow=False)
        code = w.wait(120)
        check_output(w.stdout, w.stderr)
        assert code == 0, w.stderr
        return w

    def app(self, run_id: str) -> str:
        return f"nightcopy:{run_id}"[:63]

    # ----------------------------------------------------------------- checks after a kill
    def states(self) -> dict[str, str]:
        out = {}
        for t in TABLES:
            c = table_checksum(self.target_dsn, t)
            if c == self.new[t]:
                out[t] = "new"
            elif c == self.old[t]:
                out[t] = "old"
            else:
                out[t] = f"BROKEN {c}"
        return out

    def recorded(self, run_id: str) -> set[str]:
        conn = psycopg2.connect(self.target_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name FROM nightcopy.table_results "
                            "WHERE run_id = %s AND status = 'copied'", (run_id,))
                return {r[0] for r in cur.fetchall()}
        finally:
            conn.close()

    def wait_sessions_gone(self, run_id: str, bound: float = 20.0) -> float:
        """The killed worker's server sessions end (locks with them) within the bound."""
        t0 = time.monotonic()
        app = self.app(run_id)
        wait_for(lambda: not backends(self.target_dsn, app) and not backends(self.source_dsn, app),
                 bound, 0.05, f"the killed worker's sessions to end (bound {bound}s)")
        return time.monotonic() - t0

    def check_after_kill(self, w: Worker, run_id: str, point: str) -> dict[str, str]:
        self.kills += 1
        check_output(w.stdout, w.stderr)
        states = self.states()
        broken = {t: s for t, s in states.items() if s.startswith("BROKEN")}
        assert not broken, f"kill at {point}: half-copied tables {broken}"
        # the ledger says "copied" exactly for the tables that were swapped in
        swapped = {t for t, s in states.items() if s == "new"}
        assert self.recorded(run_id) == swapped, (point, self.recorded(run_id), swapped)
        # the dependent view on the target survived (dropped and re-created in the swap)
        assert table_checksum(self.target_dsn, "public.t_view_report") is not None, point
        self.wait_sessions_gone(run_id)
        # A kill after a load committed leaves its staged copy (only in the staging schemas,
        # the reporting tables untouched); the next run drops it (checked by resume()).
        assert all(s.startswith("nightcopy_stage_") for s in staged_leftovers(self.target_dsn)), point
        return states

    def resume(self, run_id: str, done_before: set[str]) -> None:
        """A rerun with the same run id skips what was copied and finishes the rest."""
        w = self.start(run_id, slow=False)
        code = w.wait(120)
        check_output(w.stdout, w.stderr, ledger_text(self.target_dsn))
        assert code == 0, w.stderr
        events = w.events
        skipped = {e["table"] for e in events if e["event"] == "table_skipped"}
        copied = {e["table"] for e in events if e["event"] == "table_copied"}
        assert skipped == done_before, (skipped, done_before)
        assert copied == set(TABLES) - done_before
        assert all(s == "new" for s in self.states().values()), self.states()
        assert staged_leftovers(self.target_dsn) == []
        ok = table_checksum(self.target_dsn, "public.t_view_report")
        assert ok is not None and ok[0] == 5


def slow_source_proxy(make_proxy, source_dsn: str) -> TcpProxy:
    """Source through 127.0.0.1 with ~3 ms per 16 KiB: t_big's COPY takes ~0.3-0.5 s."""
    return make_proxy(unix_socket_of(source_dsn), delay=0.003, chunk=16384)
