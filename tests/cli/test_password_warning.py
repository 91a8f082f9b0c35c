"""A password in a DSN given on the command line draws a warning (issue 12); the security suite
drives `nightcopy copy` with key=value DSNs, these are the other forms and commands."""

from __future__ import annotations

import pytest

from nightcopy.cli.dsn_warnings import has_password

PASSWORD = "pw-on-argv-42"


@pytest.mark.parametrize(("dsn", "expected"), [
    (f"postgresql://app:{PASSWORD}@db/shop", True),
    (f"postgres://app:{PASSWORD}@db:5432/shop?sslmode=require", True),
    (f"postgresql://app@db/shop?password={PASSWORD}", True),
    (f"host=db dbname=shop user=app password={PASSWORD}", True),
    (f"host=db password='{PASSWORD} x'", True),
    ("postgresql://app@db/shop", False),
    ("host=db dbname=shop user=app", False),
    ("host=db port password= dbname", False),  # malformed: refused later, with its own message
    ("", False),
])
def test_passwords_are_found_in_both_dsn_forms(dsn, expected):
    assert has_password(dsn) is expected


def test_history_warns_about_a_password_in_target(cli):
    # Port 1: nothing answers, so the command fails after the warning, without a database.
    result = cli(["history", "--target", f"postgresql://app:{PASSWORD}@127.0.0.1:1/db"])
    assert result.returncode == 1
    assert PASSWORD not in result.stdout + result.stderr
    warning = [line for line in result.stderr.splitlines() if "holds a password" in line]
    assert len(warning) == 1 and "NIGHTCOPY_TARGET_DSN" in warning[0], result.stderr
    assert ".pgpass" in warning[0] and "SSM" in warning[0]


def test_copy_warns_once_per_flag_and_not_for_the_environment(cli):
    uri = f"postgresql://app:{PASSWORD}@127.0.0.1:1/db"
    both = cli(["copy", "--tables", "public.t", "--source", uri, "--target", uri])
    assert both.returncode == 1
    warned = [line for line in both.stderr.splitlines() if "holds a password" in line]
    assert [("--source" in w, "--target" in w) for w in warned] == [(True, False), (False, True)]
    assert PASSWORD not in both.stdout + both.stderr
    env = cli(["copy", "--tables", "public.t"],
              env={"NIGHTCOPY_SOURCE_DSN": uri, "NIGHTCOPY_TARGET_DSN": uri})
    assert env.returncode == 1 and "password" not in env.stderr.lower(), env.stderr
