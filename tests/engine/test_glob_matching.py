"""Table-list globs match in linear time, and exactly as before.

The old matcher translated a glob to a regular expression (`*` -> `.*`), which backtracks: the
security review's `public.*a*a*a*a*a*a*a*a*b` took about 95 s per 63-character table name. The
references below are that translation (kept here only as the oracle) and a brute-force
recursive matcher written straight from the grammar.
"""

from __future__ import annotations

import functools
import random
import re
import subprocess
import sys
import textwrap

import pytest

from nightcopy.engine import tablelist
from nightcopy.engine.tablelist import glob_fullmatch, parse_name, parse_table_list

PATHOLOGICAL = "public.*a*a*a*a*a*a*a*a*b"
LONGEST_NAME = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1)


def old_regex_match(pattern: str, value: str) -> bool:
    """The matcher this module replaced (exponential on some patterns; fine on short names)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def brute_force_match(pattern: str, value: str) -> bool:
    """The grammar, literally: `*` any run (also empty), `?` one character, the rest itself."""

    @functools.cache
    def match(p: int, v: int) -> bool:
        if p == len(pattern):
            return v == len(value)
        if pattern[p] == "*":
            return any(match(p + 1, k) for k in range(v, len(value) + 1))
        return v < len(value) and pattern[p] in ("?", value[v]) and match(p + 1, v + 1)

    return match(0, 0)


def test_the_reviews_pattern_finishes_fast_on_the_longest_names():
    # In a fresh interpreter with a hard timeout: the old matcher would hold the test for
    # minutes (re does not look at signals), the new one takes microseconds.
    code = textwrap.dedent(f"""
        import time
        from nightcopy.engine.tablelist import parse_name
        spec = parse_name({PATHOLOGICAL!r})
        names = ["a" * {LONGEST_NAME}, "a" * ({LONGEST_NAME} - 1) + "c", "ab" * 31 + "a"]
        started = time.perf_counter()
        results = [spec.matches("public", n) for n in names]
        assert spec.matches("public", "a" * 8 + "b")
        print(time.perf_counter() - started, results)
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{PATHOLOGICAL} against 63-character names took over 30 s (backtracking)")
    assert proc.returncode == 0, proc.stderr
    seconds, results = proc.stdout.split(" ", 1)
    assert results.strip() == "[False, False, False]"
    assert float(seconds) < 2.0  # generous: a few microseconds on an idle machine


def test_each_name_position_is_probed_at_most_once(monkeypatch):
    """Count the work: no backtracking means every position of the name is tried at most once
    per scan, whatever the number of stars (the `?` keeps the pieces off the str.find path)."""
    probes = 0
    fits_at = tablelist._Piece.fits_at

    def counting(self, value, position):
        nonlocal probes
        probes += 1
        return fits_at(self, value, position)

    monkeypatch.setattr(tablelist._Piece, "fits_at", counting)
    tablelist._compiled.cache_clear()
    for stars in (4, 8, 16, 31):
        pattern = "*?a" * stars + "*"  # the last piece finds no place: a full scan, once
        for padding in (LONGEST_NAME, 1000):
            name = "ba" * (stars - 1) + "b" * padding
            probes = 0
            assert glob_fullmatch(pattern, name) is False
            # head + tail + at most one probe per position of the name
            assert probes <= 2 + len(name), (stars, len(name), probes)
            probes = 0
            assert glob_fullmatch(pattern, name + "ba") is True
            assert probes <= 2 + len(name) + 2, (stars, len(name), probes)


def test_long_patterns_against_long_names_stay_fast():
    import time

    started = time.perf_counter()
    for stars in range(1, 40):
        assert not glob_fullmatch("*a" * stars + "*b", "a" * 5000)
        assert glob_fullmatch("*a" * stars + "*b", "a" * 5000 + "b")
    assert time.perf_counter() - started < 2.0


ALPHABET_PATTERN = "ab*?"
ALPHABET_NAME = "ab"


@pytest.mark.parametrize("seed", range(4))
def test_same_answers_as_the_old_matcher_on_random_globs(seed):
    rng = random.Random(seed)
    for _ in range(2500):
        pattern = "".join(rng.choice(ALPHABET_PATTERN) for _ in range(rng.randint(1, 9)))
        value = "".join(rng.choice(ALPHABET_NAME) for _ in range(rng.randint(0, 12)))
        expected = brute_force_match(pattern, value)
        assert old_regex_match(pattern, value) == expected, (pattern, value)  # the oracles agree
        assert glob_fullmatch(pattern, value) == expected, (pattern, value)


def test_same_answers_on_any_characters():
    """Names may hold anything a quoted identifier can (regex metacharacters, newlines, quotes,
    non-ASCII); unquoted patterns hold identifier characters, `$` and non-ASCII letters."""
    rng = random.Random(12)
    name_chars = "aA.$_\n\"' é*?[]\\^()|+"
    pattern_chars = "aA$_é1*?"
    for _ in range(6000):
        pattern = "".join(rng.choice(pattern_chars) for _ in range(rng.randint(1, 8)))
        value = "".join(rng.choice(name_chars) for _ in range(rng.randint(0, 10)))
        assert glob_fullmatch(pattern, value) == old_regex_match(pattern, value), (pattern, value)


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("*", "", True), ("*", "orders", True), ("?", "", False), ("?", "x", True),
    ("**", "", True), ("a**b", "ab", True), ("a*b", "a", False), ("*a*", "bab", True),
    ("order?", "orders", True), ("order?", "order", False), ("*_2026_*", "ev_2026_11", True),
    ("a*a", "a", False), ("a*a", "aa", True), ("?*?", "x", False), ("x$*", "x$1", True),
    ("*.*", "a.b", True), ("a?c", "a\nc", True),
])
def test_examples(pattern, value, expected):
    assert glob_fullmatch(pattern, value) is expected


def test_grammar_is_unchanged_quoted_parts_stay_literal():
    spec = parse_name('sales."ord*"')
    assert not spec.name_is_glob and spec.schema_is_glob is False
    assert spec.matches("sales", "ord*") and not spec.matches("sales", "orders")
    spec = parse_name("Sales.Ord?rs")  # unquoted: folded, then globbed
    assert spec.matches("sales", "orders") and not spec.matches("Sales", "orders")
    assert not spec.matches("sales", "Orders")  # a name is matched as the catalog spells it
    (star,) = parse_table_list("*.events")
    assert star.matches("anything", "events") and not star.matches("x", "events2")
