"""The corpora in the suite (issue 13): every table of each corpus copied with one
`nightcopy copy` from PostgreSQL 15 into PostgreSQL 15 and 18 by roles that are not superusers,
judged by the oracle, then copied again over the populated target with `--strategy swap` and
with `--strategy truncate` and judged again. What differs must be exactly what
`corpora/known-differences.toml` lists (each entry a README "Documented limits" section), and a
table that fails must say why in one line.

CI installs postgresql-15 and sets NIGHTCOPY_REQUIRE_PG15=1, so there these tests fail rather
than skip without it. Servers are started once per session (tests/fidelity/harness.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fidelity import harness
from tests.fidelity import known_differences as kd

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="session")
def corpus_servers() -> Iterator[harness.Servers]:
    if not harness.pg15_available():
        if os.environ.get("NIGHTCOPY_REQUIRE_PG15") or os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is missing: apt-get install postgresql-15")
        pytest.skip("PostgreSQL 15 binaries not installed (apt-get install postgresql-15)")
    servers = harness.Servers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def corpus_source(corpus_servers) -> Callable[[str], str]:
    """The worker's DSN of a source database holding the corpus, loaded once per session."""
    loaded: dict[str, str] = {}

    def source(name: str) -> str:
        if name not in loaded:
            loaded[name] = harness.load_corpus(corpus_servers.source, harness.CORPORA[name],
                                               f"corpus_{name}")
        return loaded[name]

    return source


@pytest.mark.parametrize("version", list(harness.RUNS))
@pytest.mark.parametrize("corpus", list(harness.CORPORA))
def test_corpus_copies_differ_only_by_documented_limits(corpus, version, corpus_servers,
                                                        corpus_source):
    known = kd.load()
    observations = harness.observe_corpus(corpus_servers, harness.CORPORA[corpus], version,
                                          corpus_source(corpus))
    problems: list[str] = []
    for observation in observations:
        problems += kd.mismatches(known, corpus, observation.run, observation.differences)
        for table, reason in observation.differences.items():
            # A table nightcopy refuses says so in one short line (the target).
            if reason.startswith("FAILED: ") and ("\n" in reason or "Traceback" in reason
                                                  or len(reason) > 600):
                problems.append(f"{observation.run} {table}: not a one-line reason: {reason!r}")
    assert not problems, "\n".join(problems)


def _documented_limits() -> list[str]:
    section = re.search(r"^## Documented limits\n(.*?)(?=^## )", README.read_text(),
                        re.M | re.S)
    assert section, "README.md has no '## Documented limits' section"
    return re.findall(r"^### (.+)$", section.group(1), re.M)


def test_every_known_difference_names_a_documented_limit():
    known = kd.load()
    used = {e.klass for tables in known.entries.values() for e in tables.values()}
    headings = _documented_limits()
    assert kd.UNCLASSIFIED not in used, "classify the 'unclassified' entries by hand"
    assert sorted(used) == sorted(known.limits), "a [class.*] in the file that no entry uses"
    missing = sorted({known.limits[k] for k in used} - set(headings))
    assert not missing, f"README 'Documented limits' lacks the sections {missing}"
    stale = sorted(set(headings) - {known.limits[k] for k in used})
    assert not stale, (f"README 'Documented limits' documents {stale}, which no known "
                       "difference needs any more: remove those sections")


OLD = """
[class.inheritance]
limit = "Plain inheritance"
[corpus.c]
"s.kept" = "inheritance"
"s.fixed" = "inheritance"
"""


def test_mismatches_are_strict_both_ways():
    known = kd.parse(OLD)
    assert kd.mismatches(known, "c", "18/first", {"s.kept": "x", "s.fixed": "y"}) == []
    problems = kd.mismatches(known, "c", "18/first", {"s.kept": "x", "s.new": "boom"})
    assert [p.split(":")[0] for p in problems] == ["18/first s.new", "18/first s.fixed"]
    assert "not in known-differences.toml" in problems[0] and "now equal" in problems[1]


def test_write_known_keeps_classes_and_records_the_runs():
    every_run = {run: {"s.kept": "rows differ"} for run in harness.ALL_RUNS}
    every_run["18/first"]["s.xml"] = "FAILED: s.xml: unsupported XML feature (libxml)"
    text = kd.render(kd.parse(OLD), {"c": every_run})
    again = kd.parse(text)
    assert again.entries["c"]["s.kept"].klass == "inheritance"  # kept from the old file
    assert again.entries["c"]["s.kept"].runs == harness.ALL_RUNS
    assert again.entries["c"]["s.xml"].klass == "xml-without-libxml"  # guessed
    assert again.entries["c"]["s.xml"].runs == ("18/first",)
    assert "s.fixed" not in again.entries["c"]
    for run in harness.ALL_RUNS:
        assert kd.mismatches(again, "c", run, every_run[run]) == []


def test_a_timing_dependent_entry_may_be_equal_and_survives_a_rewrite():
    known = kd.parse(OLD.replace('"s.fixed" = "inheritance"', '"s.racy" = { class = '
                                 '"inheritance", runs = ["18/truncate"], sometimes = true }'))
    assert kd.mismatches(known, "c", "18/truncate", {"s.kept": "x"}) == []
    assert kd.mismatches(known, "c", "18/truncate", {"s.kept": "x", "s.racy": "y"}) == []
    assert kd.mismatches(known, "c", "18/first", {"s.kept": "x", "s.racy": "y"}) != []
    again = kd.parse(kd.render(known, {"c": {run: {"s.kept": "x"} for run in harness.ALL_RUNS}}))
    assert again.entries["c"]["s.racy"].sometimes
    assert again.entries["c"]["s.racy"].runs == ("18/truncate",)
