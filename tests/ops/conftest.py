"""Helpers for the operator-command tests: invoke the real CLI in-process (so moto's mocks
apply) and write nightcopy.toml files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions
import pytest
from click.testing import CliRunner

from nightcopy.cli.main import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def nc(monkeypatch):
    """Run `nightcopy ARGS` in this process (click's CliRunner); NIGHTCOPY_* env cleared."""
    import os

    for key in list(os.environ):
        if key.startswith("NIGHTCOPY_"):
            monkeypatch.delenv(key)

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


def _with_password(dsn: str, password: str = "s3cr3t-pw") -> str:
    """The embedded servers trust local connections, so a password in the DSN is accepted and
    ignored: a cheap way to check that no output ever shows it."""
    return psycopg2.extensions.make_dsn(dsn, password=password)


def _write_config(path: Path, source_dsn: str, target_dsn: str, groups: list[dict],
                 *, slack: dict | None = None, options: dict | None = None) -> Path:
    lines = [f"source_dsn = {json.dumps(source_dsn)}", f"target_dsn = {json.dumps(target_dsn)}"]
    if options:
        lines.append("[options]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    if slack:
        lines.append("[slack]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in slack.items()]
    for g in groups:
        lines += ["[[groups]]", f"name = {json.dumps(g['name'])}",
                  f"tables = {json.dumps(g['tables'])}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def with_password():
    return _with_password


@pytest.fixture
def write_config():
    return _write_config
