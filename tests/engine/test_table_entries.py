"""The object form of a table-list entry (issue 17): `{"table": ..., "shrink_guard": 80}` in
--tables JSON, SSM table_groups and nightcopy.toml; its keys checked in one place."""

from __future__ import annotations

import json

import pytest

from nightcopy.engine.table_groups import parse_table_groups
from nightcopy.engine.tablelist import parse_table_entries, parse_table_list
from nightcopy.errors import ConfigError
from nightcopy.ops import config_file


def test_an_entry_is_a_name_or_an_object():
    entries = parse_table_entries('["sales.*", {"table": "public.Orders", "shrink_guard": 80},'
                                  ' {"table": "public.events", "shrink_guard": "off"}]')
    assert [(e.spec.schema, e.spec.name, e.settings) for e in entries] == [
        ("sales", "*", {}), ("public", "orders", {"shrink_guard": 80.0}),
        ("public", "events", {"shrink_guard": "off"})]
    assert [s.text for s in parse_table_list([{"table": 'public."Order Items"'}])] == [
        'public."Order Items"']


@pytest.mark.parametrize("item, message", [
    ({"table": "public.t", "shrink_gaurd": 80},
     "table list entry for public.t: unknown key 'shrink_gaurd' (known: table, shrink_guard, "
     "freshness_column, max_age, exclude_columns, mask)"),
    ({"shrink_guard": 80}, 'has no "table" name'),
    ({"table": "public.t", "shrink_guard": 150},
     "table list entry for public.t: shrink_guard must be a number from 0 to 100, or off, "
     "not 150"),
    ({"table": "sales.*", "shrink_guard": 80}, "an object names one table, not a glob"),
    (7, 'table list items must be strings or {"table": ...} objects, not 7'),
])
def test_a_bad_entry_is_one_clear_line(item, message):
    with pytest.raises(ConfigError) as err:
        parse_table_list([item])
    assert message in str(err.value)


def test_an_object_and_a_name_for_one_table_are_listed_twice():
    with pytest.raises(ConfigError, match="listed twice"):
        parse_table_list(["public.t", {"table": "public.t", "shrink_guard": 10}])


def test_objects_in_ssm_table_groups_and_the_config_file(tmp_path):
    groups = parse_table_groups(json.dumps([{"name": "sales", "tables": [
        {"table": "public.orders", "shrink_guard": 80}, "public.items"]}]))
    assert groups[0].tables == [{"table": "public.orders", "shrink_guard": 80}, "public.items"]
    path = tmp_path / "nightcopy.toml"
    path.write_text('source_dsn = "host=/x dbname=a"\ntarget_dsn = "host=/y dbname=b"\n'
                    '[[groups]]\nname = "g1"\n'
                    'tables = [{ table = "public.orders", shrink_guard = "off" }, "public.b"]\n')
    config = config_file.load_file(path)
    assert parse_table_entries(config.groups[0].tables)[0].settings == {"shrink_guard": "off"}
    path.write_text(path.read_text().replace("shrink_guard", "shrink"))
    with pytest.raises(ConfigError, match="unknown key 'shrink'"):
        config_file.load_file(path)


def test_run_hands_the_object_form_to_its_workers(tmp_path):
    """nightcopy run passes a group's entries as --tables JSON; the worker keeps the settings."""
    from nightcopy.cli.copy_command import options_from_argv
    from nightcopy.ops.local_run import GroupState, worker_command

    entry = {"table": "public.orders", "shrink_guard": 80}
    argv = worker_command(GroupState("g1", [entry, "public.b"]), "r1", tmp_path, {})
    opts = options_from_argv([*argv[4:], "--source", "host=/x dbname=a",
                              "--target", "host=/y dbname=b"])
    assert opts.shrink_policy().per_table == {("public", "orders"): 80.0}
