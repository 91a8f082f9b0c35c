"""Foreign keys between copied tables under faults (issue 7 + design "What copied means": FKs
between tables of one invocation are kept, added NOT VALID after the swaps, then validated).

The swap drops the old incoming foreign keys and the run re-adds them after all swaps, in its
own short transactions (ADD ... NOT VALID, then VALIDATE). A kill -9 in that window, then a
resume with the same run id (both tables are recorded as copied, so both are skipped).
"""

from __future__ import annotations

import psycopg2
from rel_tools import Worker, backends, check_output, wait_for, with_password

SOURCE_SQL = """
CREATE TABLE public.t_parent (id int PRIMARY KEY, v text);
INSERT INTO public.t_parent SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 15000) g;
CREATE TABLE public.t_child (id int PRIMARY KEY,
                             parent_id int CONSTRAINT t_child_parent_fk REFERENCES public.t_parent);
INSERT INTO public.t_child SELECT g, 1 + g % 15000 FROM generate_series(1, 400000) g;
"""
TABLES = "public.t_parent, public.t_child"


def _fk(dsn: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT conname, convalidated FROM pg_constraint
                            WHERE conrelid = to_regclass('public.t_child') AND contype = 'f'""")
            return cur.fetchall()
    finally:
        conn.close()


def _setup(dbs, tmp_path) -> None:
    dbs.source.execute(SOURCE_SQL)
    w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                with_password(dbs.target.dsn), "--tables", TABLES, "--run-id", "first"],
               tmp_path / "first")
    assert w.wait(60) == 0, w.stderr
    assert _fk(dbs.target.dsn) == [("t_child_parent_fk", True)]
    dbs.source.execute("UPDATE public.t_parent SET v = 'new' WHERE id % 10 = 0")


def test_kill9_while_foreign_key_validates_then_resume(dbs, tmp_path) -> None:
    """Killed during VALIDATE (the key exists NOT VALID); the resume skips both tables but
    still finishes the key: validated. (Was an engine bug: the resume did no FK work.)"""
    _setup(dbs, tmp_path)
    run_id = "fk-kill"
    w = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                with_password(dbs.target.dsn), "--tables", TABLES, "--run-id", run_id],
               tmp_path / run_id)
    try:
        wait_for(lambda: w.proc.poll() is not None or any(
            s == "active" and (q or "").startswith("ALTER TABLE public.t_child VALIDATE")
            for _p, s, _w, q in backends(dbs.target.dsn, f"nightcopy:{run_id}")),
            60, 0.002, "VALIDATE CONSTRAINT")
        assert w.proc.poll() is None, "the run ended before the kill: " + w.stderr
        w.kill9()
    finally:
        w.close()
    check_output(w.stdout, w.stderr)
    assert {e["table"] for e in w.events if e["event"] == "table_copied"} == {
        "public.t_parent", "public.t_child"}
    assert _fk(dbs.target.dsn) == [("t_child_parent_fk", False)]  # added NOT VALID, not validated
    wait_for(lambda: not backends(dbs.target.dsn, f"nightcopy:{run_id}"), 15)
    resume = Worker(["copy", "--source", with_password(dbs.source.dsn), "--target",
                     with_password(dbs.target.dsn), "--tables", TABLES, "--run-id", run_id],
                    tmp_path / "resume")
    assert resume.wait(60) == 0, resume.stderr
    check_output(resume.stdout, resume.stderr)
    assert _fk(dbs.target.dsn) == [("t_child_parent_fk", True)], "foreign key left NOT VALID"
