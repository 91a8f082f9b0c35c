"""The small world most reliability tests copy: a source with a few tables (incl. legitimate
odd names and a partitioned table) and a target holding an older version of some of them,
with grants, a dependent view and an unlisted table that nightcopy must never touch."""

from __future__ import annotations

import contextlib

import psycopg2

ROLES = ("nc_reader", "nc_nosel", "nc_nocreate")


def ensure_roles(dsn: str) -> None:
    """Cluster-wide roles the tests use (created once per server; idempotent)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for role in ROLES:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                # another test session may have made it meanwhile
                with contextlib.suppress(psycopg2.errors.DuplicateObject):
                    cur.execute(f"CREATE ROLE {role} LOGIN")
    conn.close()


SOURCE_SQL = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.customers SELECT g, 'customer ' || g FROM generate_series(1, 50) g;
CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                            customer_id int NOT NULL, amount numeric(12,2), note text);
CREATE INDEX orders_customer_idx ON public.orders (customer_id);
INSERT INTO public.orders (customer_id, amount, note)
     SELECT 1 + g % 50, g * 1.5, 'new ' || g FROM generate_series(1, 500) g;
CREATE VIEW public.orders_v AS SELECT id, amount FROM public.orders;
CREATE TABLE public.events (id int, at date NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2025 PARTITION OF public.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO public.events SELECT g, DATE '2025-06-01' + g, 'e' || g FROM generate_series(1, 300) g;
CREATE TABLE public."Order Items" (id int PRIMARY KEY, qty int);
INSERT INTO public."Order Items" SELECT g, g FROM generate_series(1, 30) g;
CREATE TABLE public."Ünïcødé ☃" ("naïve col" text);
INSERT INTO public."Ünïcødé ☃" VALUES ('snow ☃'), ('ß');
CREATE TABLE public."we""ird, name" (x int);
INSERT INTO public."we""ird, name" VALUES (1), (2);
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Q1" (id int);
INSERT INTO "Sales Dept"."Q1" VALUES (7);
"""

TARGET_SQL = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.customers SELECT g, 'old customer ' || g FROM generate_series(1, 10) g;
CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                            customer_id int NOT NULL, amount numeric(12,2), note text);
INSERT INTO public.orders (customer_id, amount, note)
     SELECT 1 + g % 10, g, 'old ' || g FROM generate_series(1, 40) g;
GRANT SELECT ON public.orders TO nc_reader;
CREATE VIEW public.orders_report AS SELECT customer_id, sum(amount) AS total
      FROM public.orders GROUP BY customer_id;
GRANT SELECT ON public.orders_report TO nc_reader;
CREATE TABLE public.unlisted (id int PRIMARY KEY, v text);
INSERT INTO public.unlisted VALUES (1, 'keep me'), (2, 'me too');
CREATE SEQUENCE public.target_seq;
SELECT nextval('public.target_seq');
"""


def build(source_dsn: str, target_dsn: str) -> None:
    for dsn, sql in ((source_dsn, SOURCE_SQL), (target_dsn, TARGET_SQL)):
        ensure_roles(dsn)
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()
