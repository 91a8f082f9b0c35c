"""Keys over columns left out of the copy (issue 17): a foreign key of another copied table that
references an excluded column, and one whose own columns are excluded, cannot exist on the
target; each is skipped with one warning naming the key and why, the night succeeds, and the
rest of the tables' keys are there."""

from __future__ import annotations

import json

import pytest

SOURCE_SQL = """
CREATE TABLE public.customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text);
INSERT INTO public.customers VALUES (1, 'a@x.org', 'a'), (2, 'b@x.org', 'b');
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int REFERENCES public.customers,
                            customer_email text REFERENCES public.customers (email));
INSERT INTO public.orders VALUES (1, 1, 'a@x.org'), (2, 2, 'b@x.org');
"""


@pytest.mark.parametrize("entry, how", [({"exclude_columns": ["email"]}, "excluded"),
                                        ({"mask": {"email": "null"}}, "masked")])
def test_keys_into_left_out_columns_are_skipped_with_one_warning(copy, dbs, entry, how):
    dbs.source.execute(SOURCE_SQL)
    tables = json.dumps([{"table": "public.customers", **entry}, "public.orders"])
    result = copy(tables)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    keys = dbs.target.query("SELECT conname, convalidated FROM pg_constraint WHERE conrelid = "
                            "'public.orders'::regclass AND contype = 'f' ORDER BY 1")
    assert keys == [("orders_customer_id_fkey", True)]
    about_key = [e["message"] for e in result.events_of("warning")
                 if "orders_customer_email_fkey" in e["message"]]
    assert about_key == ["public.orders: foreign key orders_customer_email_fkey references the "
                         f"{how} column email of public.customers: not created on the target"]
