"""scrub(), the last line of defence: every output nightcopy writes goes through it, so each of
its patterns and the registry of secret values are tested directly here (the engine tests show
that a server message echoing secrets reaches the user redacted)."""

from __future__ import annotations

import pytest

from nightcopy.secrets import register_secret, scrub


@pytest.mark.parametrize("text, expected", [
    ("cannot reach postgresql://app:pw-1@db.example/shop",
     "cannot reach postgresql://app:***@db.example/shop"),
    ("postgres://app:p%40ss@db:5432/x?sslmode=require", "postgres://app:***@db:5432/x?sslmode=require"),
    ("two: postgresql://a:x1@h1/d and postgresql://b:y2@h2/d",
     "two: postgresql://a:***@h1/d and postgresql://b:***@h2/d"),
    ("host=db password=hunter2 user=app", "host=db password=*** user=app"),
    ("host=db PASSWORD = 'a b\\'c' user=app", "host=db PASSWORD = *** user=app"),
    ("posting to https://hooks.slack.com/services/T0/B0/abcDEF123 failed",
     "posting to https://hooks.slack.com/*** failed"),
    ('{"url": "https://hooks.slack.com/services/T0/B0/abc"}', '{"url": "https://hooks.slack.com/***"}'),
    ("token xoxb-1234-5678-abcdEF rejected", "token xox?-*** rejected"),
    ("xoxp-1-2 xoxa-9 xoxr-x xoxs-y xoxo-z", "xox?-*** xox?-*** xox?-*** xox?-*** xox?-***"),
])
def test_every_secret_shape_is_redacted(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "postgresql://app@db/shop",  # no password: nothing to hide, the DSN stays readable
    "copied public.orders: 10000 rows",
    "https://example.com/services/T0/B0/abc",
    "",
])
def test_text_without_secrets_is_unchanged(text):
    assert scrub(text) == text


def test_a_registered_secret_is_redacted_in_any_context():
    register_secret("Qz7-registered-pw")
    assert scrub('ERROR: role "x" said Qz7-registered-pw twice: Qz7-registered-pw') == \
        'ERROR: role "x" said *** twice: ***'
    # Inside another shape too (the pattern alone would leave the user visible: the value goes).
    assert "Qz7-registered-pw" not in scrub("user=Qz7-registered-pw host=db")


def test_the_longest_registered_secret_goes_first():
    # A shorter secret inside a longer one must not leave the rest of the longer one behind.
    register_secret("Kx9pw")
    register_secret("Kx9pw-and-more")
    assert scrub("value Kx9pw-and-more end") == "value *** end"


def test_values_too_short_to_be_secrets_are_not_registered():
    register_secret("ab")
    register_secret(None)
    register_secret("")
    assert scrub("a table named ab") == "a table named ab"
