"""The reference benchmark dataset (described in docs/benchmark.md).

Built from nothing so a fresh checkout can reproduce it: every value is a pure function of the row number, so two builds are identical.
  (a) pgbench -i -s SCALE                 pgbench_accounts = SCALE*100k narrow rows, PKs
  (b) wide_events: WIDE_ROWS rows, 25 type-rich columns, PK + an index on created_at
  (c) small_000 .. small_<N-1>: SMALL_TABLES tables x 1000 rows, PK each
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from .servers import execute_sql

WIDE_DDL = """
DROP TABLE IF EXISTS wide_events;
CREATE TABLE wide_events (
  id          bigint PRIMARY KEY,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz,
  user_id     bigint,
  account_id  integer,
  event_type  text,
  title       text,
  body        text,
  payload     jsonb,
  amount      numeric(14,2),
  ratio       numeric,
  session_id  uuid,
  trace_id    uuid,
  is_active   boolean,
  is_deleted  boolean,
  tags        integer[],
  score       double precision,
  weight      real,
  counter     integer,
  priority    smallint,
  event_date  date,
  duration    interval,
  client_ip   inet,
  country     char(2),
  checksum    bytea
);
"""

WIDE_INSERT = """
INSERT INTO wide_events
SELECT g,
       timestamptz '2023-01-01 00:00:00+00' + (g * interval '31 seconds'),
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE timestamptz '2023-01-01 00:00:00+00' + (g * interval '31 seconds') + ((g % 977) * interval '1 second') END,
       (g * 2654435761) % 1000003,
       (g % 50000)::int,
       (ARRAY['click','view','purchase','signup','logout','search','share'])[1 + g % 7],
       substr(repeat(h, 7), 1, (20 + (g * 7919) % 181)::int),
       substr(repeat(md5(h), 7), 1, (20 + (g * 104729) % 181)::int),
       jsonb_build_object(
         'ref', h,
         'n', g % 1000,
         'ok', g % 2 = 0,
         'tags', jsonb_build_array('t' || (g % 13), 't' || (g % 17), 't' || (g % 19)),
         'geo', jsonb_build_object('lat', round(((g % 18000) / 100.0 - 90)::numeric, 2),
                                   'lon', round(((g % 36000) / 100.0 - 180)::numeric, 2)),
         'ua', left(md5(h || 'ua'), 24)),
       ((g * 7) % 10000000) / 100.0,
       (g % 99991)::numeric / 7,
       h::uuid,
       md5(h || 'trace')::uuid,
       g % 5 <> 0,
       g % 97 = 0,
       ARRAY[g % 10, g % 100, g % 1000, g % 10000, g % 100000]::int[],
       (g % 100003) / 3.0,
       ((g % 1009) / 7.0)::real,
       (g % 2147483)::int,
       (g % 32000)::smallint,
       date '2023-01-01' + (g % 730)::int,
       (g % 86400) * interval '1 second',
       ('10.' || (g >> 16) % 256 || '.' || (g >> 8) % 256 || '.' || g % 256)::inet,
       (ARRAY['US','DE','FR','JP','BR','IN','GB','CA'])[1 + g % 8],
       decode(h, 'hex')
FROM (SELECT g, md5(g::text) AS h FROM generate_series(1::bigint, {ROWS}) AS g) s;
CREATE INDEX wide_events_created_at_idx ON wide_events (created_at);
"""

SMALL_DO = """
DO $$
DECLARE i int; t text;
BEGIN
  FOR i IN 0 .. {N} - 1 LOOP
    t := format('small_%s', lpad(i::text, 3, '0'));
    EXECUTE format('DROP TABLE IF EXISTS %I', t);
    EXECUTE format('CREATE TABLE %I (id integer PRIMARY KEY, name text NOT NULL,
                    val numeric(12,2), created timestamptz, flag boolean)', t);
    EXECUTE format('INSERT INTO %I SELECT g, md5((g + %s * 1000)::text),
                    ((g * 37) %% 100000) / 100.0,
                    timestamptz ''2024-01-01 00:00:00+00'' + g * interval ''1 minute'',
                    g %% 2 = 0
                    FROM generate_series(1, 1000) g', t, i);
  END LOOP;
END $$;
"""


@dataclass(frozen=True)
class DatasetSpec:
    scale: int            # pgbench scale; 0 = no pgbench tables
    wide_rows: int        # 0 = no wide_events table
    small_tables: int     # 0 = no small tables

    def label(self) -> str:
        return f"SCALE={self.scale} WIDE_ROWS={self.wide_rows} SMALL_TABLES={self.small_tables}"


def build(dsn: str, spec: DatasetSpec, bin_dir: Path) -> None:
    """Fill the (empty) database at `dsn` with the dataset, then VACUUM ANALYZE + CHECKPOINT."""
    if spec.scale > 0:
        env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
        subprocess.run([str(bin_dir / "pgbench"), "-i", "-q", "-s", str(spec.scale), dsn],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if spec.wide_rows > 0:
        execute_sql(dsn, WIDE_DDL)
        # no bind parameters: the SQL is full of % operators; the value is an int we format
        execute_sql(dsn, WIDE_INSERT.replace("{ROWS}", str(int(spec.wide_rows))))
    if spec.small_tables > 0:
        execute_sql(dsn, SMALL_DO.replace("{N}", str(int(spec.small_tables))))
    execute_sql(dsn, "VACUUM (ANALYZE)")
    execute_sql(dsn, "CHECKPOINT")


def table_sizes(dsn: str) -> dict[str, int]:
    """pg_total_relation_size (heap + TOAST + indexes) per ordinary table in public, as
    make_dataset.sh's dataset_sizes.txt reports it; MB/s in the results divide their sum."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("""
                SELECT format('%I.%I', n.nspname, c.relname), pg_total_relation_size(c.oid)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                ORDER BY 2 DESC, 1""")
            return {name: size for name, size in cur.fetchall()}
    finally:
        conn.close()


def row_counts(dsn: str, tables: list[str]) -> dict[str, int | None]:
    """Exact count(*) per table (None where the table is missing): the correctness check."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    out: dict[str, int | None] = {}
    try:
        with conn.cursor() as cur:
            for t in tables:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (t,))
                if not cur.fetchone()[0]:
                    out[t] = None
                    continue
                cur.execute(f"SELECT count(*) FROM {t}")  # t is format('%I.%I')-quoted
                out[t] = cur.fetchone()[0]
    finally:
        conn.close()
    return out
