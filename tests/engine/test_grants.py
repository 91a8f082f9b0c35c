"""Grants of tables new on the target."""

from __future__ import annotations


def test_new_tables_get_source_grants_for_roles_the_target_has(copy, dbs):
    role_sql = ("DO $$ BEGIN CREATE ROLE {0}; EXCEPTION WHEN duplicate_object THEN NULL; "
                "END $$;")
    dbs.source.execute(role_sql.format("nc_analyst") + role_sql.format("nc_source_only") + """
        CREATE TABLE public.g (id int, secret text);
        GRANT SELECT ON public.g TO nc_analyst;
        GRANT SELECT (id) ON public.g TO nc_source_only;
        GRANT UPDATE (secret) ON public.g TO nc_analyst;""")
    dbs.target.execute(role_sql.format("nc_analyst") + "DROP ROLE IF EXISTS nc_source_only")
    result = copy("public.g")
    assert result.returncode == 0, result.stderr
    assert dbs.target.scalar("SELECT has_table_privilege('nc_analyst', 'public.g', 'SELECT')")
    assert dbs.target.scalar("SELECT has_column_privilege('nc_analyst', 'public.g', 'secret', "
                             "'UPDATE')")
    warnings = [e["message"] for e in result.events_of("warning")]
    assert any("nc_source_only" in w and "skipped" in w for w in warnings), warnings
