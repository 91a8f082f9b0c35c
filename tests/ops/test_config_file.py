"""nightcopy.toml: literal DSNs or env:VAR references, [[groups]] or table_groups, options."""

from __future__ import annotations

import pytest

from nightcopy.errors import ConfigError
from nightcopy.ops.config_file import load, load_file


def write(tmp_path, text: str):
    path = tmp_path / "nightcopy.toml"
    path.write_text(text)
    return path


def test_groups_env_references_options_and_slack(tmp_path):
    path = write(tmp_path, '''
source_dsn = "env:SRC"
target_dsn = "postgresql://report@db2/reporting"
[options]
jobs = 3
strategy = "truncate"
parallel = 2
[slack]
webhook_url = "env:HOOK"
[[groups]]
name = "orders"
tables = ["public.orders", 'public."Order Items"']
[[groups]]
name = "rest"
tables = ["sales.*"]
''')
    cfg = load_file(path, environ={"SRC": "postgresql://app@db1/shop", "HOOK": "https://x"})
    assert cfg.source_dsn == "postgresql://app@db1/shop"
    assert cfg.target_dsn == "postgresql://report@db2/reporting"
    assert [(g.name, g.tables) for g in cfg.groups] == [
        ("orders", ["public.orders", 'public."Order Items"']), ("rest", ["sales.*"])]
    assert cfg.options == {"jobs": 3, "strategy": "truncate", "parallel": 2}
    assert cfg.slack_webhook_url == "https://x" and cfg.slack_configured


def test_table_groups_in_the_ssm_shape(tmp_path):
    path = write(tmp_path, '''
source_dsn = "host=a dbname=x"
target_dsn = "host=b dbname=y"
table_groups = [["public.a", "public.b"], ["public.c"]]
''')
    cfg = load_file(path)
    assert [g.name for g in cfg.groups] == ["g1", "g2"]
    assert not cfg.slack_configured


@pytest.mark.parametrize("body, message", [
    ('source_dsn = "env:NOPE_NOT_SET"\ntarget_dsn = "x"\n[[groups]]\nname="a"\ntables=["t"]',
     "NOPE_NOT_SET, which is not set"),
    ('target_dsn = "x"\n[[groups]]\nname="a"\ntables=["t"]', "source_dsn is missing"),
    ('source_dsn = "x"\ntarget_dsn = "y"', "no groups"),
    ('source_dsn = "x"\ntarget_dsn = "y"\n[options]\njbos = 2\n[[groups]]\nname="a"\ntables=["t"]',
     "unknown option 'jbos'"),
    ('source_dsn = "x"\ntarget_dsn = "y"\n[options]\nstrategy = "fast"\n[[groups]]\nname="a"\n'
     'tables=["t"]', "strategy must be one of swap, truncate"),
    ('source_dsn = "x"\ntarget_dsn = "y"\n[[groups]]\nname="a"\ntables="t1, t2"',
     "tables must be an array"),
    ('source_dsn = "x"\ntarget_dsn = "y"\n[[groups]]\nname="a"\ntables=["t"]\n'
     '[[groups]]\nname="a"\ntables=["u"]', "more than once"),
    ('source_dsn = "x"\ntarget_dsn = "y"\n[[groups]]\nname="a"\ntables=["t", "public.t"]',
     "listed twice"),
    ('source_dsn = "x"\ntarget_dsn = "y"\nsurce = 1\n[[groups]]\nname="a"\ntables=["t"]',
     "unknown key(s) surce"),
    ('source_dsn = "x"\ntarget_dsn = = "y"', "not valid TOML"),
])
def test_mistakes_are_one_clear_config_error(tmp_path, body, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_file(write(tmp_path, body), environ={})
    assert message in str(info.value)


def test_missing_file_and_both_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="nightcopy.toml not found"):
        load(None, None)
    with pytest.raises(ConfigError, match="either --ssm-prefix or --config"):
        load("x.toml", "/p")
