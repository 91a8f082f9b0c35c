"""The stress world: five copied tables, reporting views over them on the target, and the data
of each night on the source.

Every row of night N carries N in its `night` column, and every view exposes the night column
of each table it reads, so one query can tell which nights it saw: a view query that saw two
nights joined tonight's rows of one table with last night's of another (a mix). Each reader
query returns (row count, order-independent checksum, the nights seen); the source carries the
same views (the materialized one as a plain view), so the expected result of every query for
every night is computed on the source right after that night's data is written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from benchlib.servers import execute_sql

READER_ROLE = "swapstress_reader"
TABLES = ["public.film", "public.inventory", "public.customer", "public.rental", "public.payment"]

_TABLES_DDL = """
CREATE TABLE public.film (id int PRIMARY KEY, night int NOT NULL, title text NOT NULL,
                          rate numeric(5,2) NOT NULL);
CREATE TABLE public.inventory (id int PRIMARY KEY, film_id int NOT NULL, night int NOT NULL,
                               store int NOT NULL);
CREATE TABLE public.customer (id int PRIMARY KEY, night int NOT NULL, name text NOT NULL);
CREATE TABLE public.rental (id int PRIMARY KEY, inventory_id int NOT NULL,
                            customer_id int NOT NULL, night int NOT NULL, pad text NOT NULL);
CREATE TABLE public.payment (id int PRIMARY KEY, rental_id int NOT NULL,
                             customer_id int NOT NULL, night int NOT NULL,
                             amount numeric(8,2) NOT NULL);
"""

# Views of a reporting database: joins of 2 to 4 copied tables, one view on a view, and a
# materialized view (on the source a plain view of the same name gives its expected rows).
_VIEWS = [
    ("report.rental_detail", False, """
        SELECT r.id AS rental_id, r.customer_id, f.title, i.store,
               r.night AS rental_night, i.night AS inventory_night, f.night AS film_night
          FROM public.rental r
          JOIN public.inventory i ON i.id = r.inventory_id
          JOIN public.film f ON f.id = i.film_id"""),
    ("report.film_stock", False, """
        SELECT f.id AS film_id, i.id AS inventory_id, i.store,
               f.night AS film_night, i.night AS inventory_night
          FROM public.film f JOIN public.inventory i ON i.film_id = f.id"""),
    ("report.customer_payments", False, """
        SELECT c.id AS customer_id, c.name, p.id AS payment_id, p.amount,
               c.night AS customer_night, p.night AS payment_night, r.night AS rental_night
          FROM public.customer c
          JOIN public.payment p ON p.customer_id = c.id
          JOIN public.rental r ON r.id = p.rental_id"""),
    ("report.rental_customer", False, """
        SELECT d.rental_id, d.title, c.name, d.rental_night, d.inventory_night, d.film_night,
               c.night AS customer_night
          FROM report.rental_detail d JOIN public.customer c ON c.id = d.customer_id"""),
    ("report.film_revenue", True, """
        SELECT i.film_id, sum(p.amount) AS revenue, count(*) AS payments,
               min(p.night) AS payment_night_min, max(p.night) AS payment_night_max,
               min(r.night) AS rental_night_min, max(r.night) AS rental_night_max,
               min(i.night) AS inventory_night_min, max(i.night) AS inventory_night_max
          FROM public.payment p
          JOIN public.rental r ON r.id = p.rental_id
          JOIN public.inventory i ON i.id = r.inventory_id
         GROUP BY i.film_id"""),
]

# Night columns of every relation a reader queries.
NIGHT_COLUMNS = {
    "public.film": ["night"], "public.inventory": ["night"], "public.customer": ["night"],
    "public.rental": ["night"], "public.payment": ["night"],
    "report.rental_detail": ["rental_night", "inventory_night", "film_night"],
    "report.film_stock": ["film_night", "inventory_night"],
    "report.customer_payments": ["customer_night", "payment_night", "rental_night"],
    "report.rental_customer": ["rental_night", "inventory_night", "film_night",
                               "customer_night"],
    "report.film_revenue": ["payment_night_min", "payment_night_max", "rental_night_min",
                            "rental_night_max", "inventory_night_min", "inventory_night_max"],
}
VIEWS = [name for name, _m, _q in _VIEWS]


def reader_query(relation: str) -> str:
    """(rows, checksum, nights seen) of one relation, in one statement."""
    ends = ", ".join(f"min(x.{c}), max(x.{c})" for c in NIGHT_COLUMNS[relation])
    return (f"SELECT count(*), COALESCE(sum(hashtext(x::text)::bigint), 0), "
            f"ARRAY(SELECT DISTINCT n FROM unnest(ARRAY[{ends}]) n WHERE n IS NOT NULL "
            f"ORDER BY n) FROM {relation} x")


QUERIES = {relation: reader_query(relation) for relation in NIGHT_COLUMNS}


@dataclass(frozen=True)
class Sizes:
    """Row counts of night 0; each night adds a few rows, so counts change too."""

    films: int = 300
    inventory: int = 3000
    customers: int = 1000
    rentals: int = 20000
    payments: int = 20000

    def scaled(self, factor: float) -> Sizes:
        return Sizes(*(max(10, int(v * factor)) for v in
                       (self.films, self.inventory, self.customers, self.rentals,
                        self.payments)))


def night_sql(n: int, s: Sizes) -> str:
    """Replace every source table's rows with night n's (deterministic, different each night)."""
    f, i, c, r, p = (s.films + n, s.inventory + 3 * n, s.customers + 2 * n,
                     s.rentals + 7 * n, s.payments + 5 * n)
    return f"""
    TRUNCATE public.film, public.inventory, public.customer, public.rental, public.payment;
    INSERT INTO public.film SELECT g, {n}, 'film ' || g || ' of night {n}',
           ((g * 7 + {n}) % 500) / 100.0 FROM generate_series(1, {f}) g;
    INSERT INTO public.inventory SELECT g, 1 + (g * 13 + {n}) % {f}, {n}, g % 3
      FROM generate_series(1, {i}) g;
    INSERT INTO public.customer SELECT g, {n}, 'customer ' || g || '/' || {n}
      FROM generate_series(1, {c}) g;
    INSERT INTO public.rental SELECT g, 1 + (g * 31 + {n}) % {i}, 1 + (g * 17 + {n}) % {c}, {n},
           repeat(md5(g::text), 2) FROM generate_series(1, {r}) g;
    INSERT INTO public.payment SELECT g, 1 + (g * 11 + {n}) % {r}, 1 + (g * 19 + {n}) % {c},
           {n}, ((g * 37 + {n}) % 10000) / 100.0 FROM generate_series(1, {p}) g;
    """


def one(cur) -> tuple:
    """The single row a query must return."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"no row from: {cur.query!r}")
    return row


def setup_source(dsn: str, sizes: Sizes) -> None:
    """Tables, the plain views that give the expected results, and night 0's rows."""
    views = "".join(f"CREATE VIEW {name} AS {query};\n" for name, _m, query in _VIEWS)
    execute_sql(dsn, _TABLES_DDL + "CREATE SCHEMA report;\n" + views + night_sql(0, sizes))


def ensure_reader_role(admin_dsn: str) -> None:
    """The reporting users' role (cluster-wide; they read only through their grants)."""
    # made by an earlier run, or by a concurrent one on the same server
    with contextlib.suppress(psycopg2.errors.DuplicateObject, psycopg2.errors.UniqueViolation):
        execute_sql(admin_dsn, f"CREATE ROLE {READER_ROLE} LOGIN")


def reader_dsn(target_dsn: str) -> str:
    return psycopg2.extensions.make_dsn(target_dsn, user=READER_ROLE)


def setup_target_objects(dsn: str, matview: bool = True) -> None:
    """After the first copy: the views, the materialized view (with an index and a comment),
    and grants to the reporting role, as a reporting database has them. Without `matview`,
    report.film_revenue is a plain view (same query, same name, its index left out): the world
    of the swap's own checks while materialized views are another change's."""
    parts = ["CREATE SCHEMA report;"]
    for name, materialized_view, query in _VIEWS:
        materialized = materialized_view and matview
        parts.append(f"CREATE {'MATERIALIZED ' if materialized else ''}VIEW {name} AS {query};")
        parts.append(f"COMMENT ON {'MATERIALIZED ' if materialized else ''}VIEW {name} IS "
                     f"'swap-stress: {name}';")
    if matview:
        parts.append("CREATE UNIQUE INDEX film_revenue_film ON report.film_revenue (film_id);")
    parts.append(f"GRANT USAGE ON SCHEMA public, report TO {READER_ROLE};")
    parts.append(f"GRANT SELECT ON {', '.join(TABLES + VIEWS)} TO {READER_ROLE};")
    execute_sql(dsn, "\n".join(parts))


def lost_objects(dsn: str, matview: bool = True) -> list[str]:
    """Views, the matview's index, comments and grants of the setup that are gone."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    lost = []
    try:
        with conn.cursor() as cur:
            for name in VIEWS:
                cur.execute("SELECT to_regclass(%s)", (name,))
                if one(cur)[0] is None:
                    lost.append(f"{name} (dropped)")
                    continue
                cur.execute("SELECT obj_description(%s::regclass, 'pg_class')", (name,))
                if one(cur)[0] != f"swap-stress: {name}":
                    lost.append(f"comment on {name}")
                cur.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (READER_ROLE, name))
                if not one(cur)[0]:
                    lost.append(f"grant on {name}")
            cur.execute("SELECT to_regclass('report.film_revenue_film')")
            if matview and one(cur)[0] is None:
                lost.append("index report.film_revenue_film")
            for name in TABLES:
                cur.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (READER_ROLE, name))
                if not one(cur)[0]:
                    lost.append(f"grant on {name}")
    finally:
        conn.close()
    return lost


def expected_results(dsn: str) -> dict[str, tuple]:
    """Every reader query's result on the source, all from one snapshot."""
    conn = psycopg2.connect(dsn)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            out = {}
            for relation, query in QUERIES.items():
                cur.execute(query)
                count, checksum, nights = one(cur)
                out[relation] = (count, int(checksum), tuple(nights))
        conn.rollback()
        return out
    finally:
        conn.close()


def write_night(dsn: str, n: int, sizes: Sizes) -> None:
    execute_sql(dsn, night_sql(n, sizes))
