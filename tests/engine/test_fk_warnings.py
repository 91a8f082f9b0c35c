"""Foreign keys the copy cannot keep as they were: each one is a warning naming the key."""

from __future__ import annotations

SOURCE = """
    CREATE TABLE public.parent (id int PRIMARY KEY);
    CREATE TABLE public.child (id int PRIMARY KEY,
                               parent_id int CONSTRAINT child_parent_fk REFERENCES public.parent);
    INSERT INTO public.parent SELECT generate_series(1, 10);
    INSERT INTO public.child SELECT g, g FROM generate_series(1, 10) g;
"""


def _fk(dbs) -> list[tuple]:
    return dbs.target.query("SELECT conname, convalidated FROM pg_constraint "
                            "WHERE conname = 'child_parent_fk'")


def test_a_key_to_a_table_outside_the_invocation_is_skipped_with_a_warning(copy, dbs):
    dbs.source.execute(SOURCE)
    result = copy("public.child")
    assert result.returncode == 0, result.stderr
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("foreign key child_parent_fk references a table outside this copy" in w
               for w in warnings), warnings
    assert _fk(dbs) == []
    assert dbs.target.scalar("SELECT count(*) FROM public.child") == 10


def test_a_key_that_does_not_validate_is_left_not_valid_with_a_warning(copy, dbs):
    dbs.source.execute(SOURCE)
    assert copy("public.parent,public.child").returncode == 0
    assert _fk(dbs) == [("child_parent_fk", True)]
    # The parent cannot be swapped this time (a target rule is defined on it), so it
    # keeps its old rows while the child gets a row pointing at a parent only the source has.
    dbs.target.execute("CREATE RULE parent_rule AS ON DELETE TO public.parent DO INSTEAD NOTHING")
    dbs.source.execute("INSERT INTO public.parent VALUES (11); INSERT INTO public.child "
                       "VALUES (11, 11)")
    result = copy("public.parent,public.child")
    assert result.returncode == 1
    assert [e["table"] for e in result.events_of("table_failed")] == ["public.parent"]
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("foreign key child_parent_fk left NOT VALID" in w for w in warnings), warnings
    # Readers still see the key (enforced for new rows), marked as not validated.
    assert _fk(dbs) == [("child_parent_fk", False)]
    assert dbs.target.scalar("SELECT count(*) FROM public.child") == 11


def test_keys_into_a_table_that_is_not_on_the_target_are_skipped_in_one_line(copy, dbs):
    # The parent is refused before anything is written (its CHECK calls an untrusted user
    # function), so on a first night it never reaches the target: its keys are not tried.
    dbs.source.execute("""
        CREATE FUNCTION public.is_small(n int) RETURNS boolean LANGUAGE sql IMMUTABLE
            AS 'SELECT n < 100';
        CREATE TABLE public.parent (id int PRIMARY KEY CHECK (public.is_small(id)));
        CREATE TABLE public.child (id int PRIMARY KEY,
            parent_id int CONSTRAINT child_parent_fk REFERENCES public.parent,
            other_id int CONSTRAINT child_other_fk REFERENCES public.parent);
        INSERT INTO public.parent VALUES (1);
        INSERT INTO public.child VALUES (1, 1, 1);""")
    result = copy("public.parent,public.child")
    assert result.returncode == 1
    assert [e["table"] for e in result.events_of("table_failed")] == ["public.parent"]
    warnings = [e["message"] for e in result.events_of("warning") if "foreign key" in e["message"]]
    assert warnings == ["public.parent was not copied tonight and is not on the target: its "
                        "foreign keys were not added (public.child.child_other_fk, "
                        "public.child.child_parent_fk); the next copy of it adds them"], warnings
    assert "does not exist" not in result.stderr
    assert dbs.target.scalar("SELECT count(*) FROM public.child") == 1
