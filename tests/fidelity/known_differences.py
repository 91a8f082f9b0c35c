"""The differences the corpus tests expect today: `corpora/known-differences.toml`.

The file maps, per corpus, each table (or `sequence schema.name`) that differs after a copy to
its class, and each class to the README "Documented limits" section that documents it:

    [class.inheritance]
    limit = "Plain inheritance"

    [corpus.pgregress]
    "public.a_star" = "inheritance"                                   # in every run
    "public.xmltest" = { class = "xml-without-libxml", runs = ["18/first", "18/swap"] }
    "fid.racy" = { class = "not-valid-constraint", runs = ["18/truncate"], sometimes = true }

The comparison is strict both ways: a difference not listed fails, and so does a listed one that
no longer differs (the fix landed: shrink the file), except an entry marked `sometimes = true`:
a difference that depends on timing (the copy runs tables in parallel), which may or may not
show in a run. `scripts/fidelity-check --write-known`
rewrites it from a run, keeping the classes already assigned and guessing new ones (CLASS_RULES).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.fidelity.harness import ALL_RUNS, CORPORA_DIR

KNOWN_FILE = CORPORA_DIR / "known-differences.toml"
UNCLASSIFIED = "unclassified"

# How --write-known guesses the class of a new difference: the first rule whose pattern occurs
# in its one-line reason wins. (class, README limit heading, pattern)
CLASS_RULES: tuple[tuple[str, str, str], ...] = (
    ("xml-without-libxml", "xml columns on a target built without libxml", r"libxml"),
    ("custom-base-type", "Custom base types", r"custom base type"),
    ("truncate-ignores-trust", "--strategy truncate and trusted functions",
     r"strategy truncate: .*would run as the worker"),
    ("check-calls-user-function", "CHECKs calling user functions", r"--trust|trust it"),
    ("user-collation", "User-defined collations", r"collation .* does not exist"),
    ("not-valid-constraint", "NOT VALID constraints", r"violates check constraint|NOT VALID"),
    ("generated-names-own-table", "Generated columns naming their own table",
     r'FAILED: .*relation ".*" does not exist'),
    ("inheritance", "Plain inheritance", r"INHERITS|\binherit"),
    ("typed-table", "Typed tables", r"CREATE TABLE \S+ OF "),
    ("column-storage", "Column storage, compression and statistics",
     r"SET (STORAGE|COMPRESSION|STATISTICS)"),
    ("access-method", "Table access methods", r"default_table_access_method=(?!heap\b)"),
    ("force-rls", "FORCE ROW LEVEL SECURITY", r"FORCE ROW LEVEL SECURITY"),
    ("reloptions", "Storage parameters (reloptions)", r"\) WITH \("),
    ("sequence-state", "Sequence state", r"^sequence state"),
)


@dataclass(frozen=True)
class Expected:
    table: str
    klass: str
    runs: tuple[str, ...]  # where it differs (ALL_RUNS when the entry names none)
    sometimes: bool = False  # timing-dependent: being equal in a run is not a mismatch


@dataclass
class Known:
    limits: dict[str, str]  # class -> the README "Documented limits" heading
    entries: dict[str, dict[str, Expected]]  # corpus -> table -> what is expected

    def expected(self, corpus: str, run: str) -> dict[str, Expected]:
        return {t: e for t, e in self.entries.get(corpus, {}).items() if run in e.runs}


def parse(text: str, source: str = "known-differences.toml") -> Known:
    data = tomllib.loads(text)
    limits = {name: spec["limit"] for name, spec in data.get("class", {}).items()}
    entries: dict[str, dict[str, Expected]] = {}
    for corpus, tables in data.get("corpus", {}).items():
        entries[corpus] = {}
        for table, value in tables.items():
            if isinstance(value, str):
                value = {"class": value}
            runs = tuple(value.get("runs", ALL_RUNS))
            bad_runs = sorted(set(runs) - set(ALL_RUNS))
            if value["class"] not in limits or bad_runs:
                raise ValueError(f"{source}: {corpus} {table}: class {value['class']!r} has no "
                                 f"[class.{value['class']}] limit or unknown runs {bad_runs}")
            entries[corpus][table] = Expected(table, value["class"], runs,
                                              bool(value.get("sometimes", False)))
    return Known(limits, entries)


def load(path: Path = KNOWN_FILE) -> Known:
    return parse(path.read_text(), path.name)


def mismatches(known: Known, corpus: str, run: str, observed: dict[str, str]) -> list[str]:
    """Every way a run's differences (table -> reason) disagree with the file, one line each."""
    expected = known.expected(corpus, run)
    out = [f"{run} {table}: differs, not in known-differences.toml: {reason[:400]}"
           for table, reason in sorted(observed.items()) if table not in expected]
    out += [f"{run} {table}: now equal, but known-differences.toml lists it "
            f"({expected[table].klass}): remove it (scripts/fidelity-check --write-known)"
            for table in sorted(expected)
            if table not in observed and not expected[table].sometimes]
    return out


def classify(reason: str, in_inheritance: bool = False) -> str:
    """IN_INHERITANCE: the table is a parent or child of plain inheritance on the source (a
    parent's only symptom is missing rows, which no pattern can tell)."""
    for klass, _limit, pattern in CLASS_RULES:
        if (klass == "inheritance" and in_inheritance) or re.search(pattern, reason):
            return klass
    return UNCLASSIFIED


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX for the rest).
    return json.dumps(text)


def _comment(reason: str) -> str:
    # (the oracle's note of the default access method and tablespace says nothing here)
    reason = reason.replace("[default_table_access_method=heap, default_tablespace=''] ", "")
    return re.sub(r"\s+", " ", reason)[:110]


def render(old: Known, observed: dict[str, dict[str, dict[str, str]]],
           inheritance: dict[str, set[str]] | None = None) -> str:
    """The file for OBSERVED (corpus -> run -> table -> reason; every run of ALL_RUNS), keeping
    OLD's classes and limits for what still differs; unused classes are dropped. INHERITANCE:
    per corpus, the tables in plain inheritance on the source (for classify())."""
    limits = {klass: limit for klass, limit, _ in CLASS_RULES} | old.limits
    limits.setdefault(UNCLASSIFIED, "TODO: classify by hand and document in the README")
    lines = [
        "# The differences tests/fidelity/test_corpora.py expects after each run (TARGET/COPY),",
        "# per corpus: table -> class (in every run), or { class, runs } when it differs only",
        "# in some. Each class names the README \"Documented limits\" section documenting it.",
        "# Strict both ways: an unlisted difference fails, and so does a listed table that no",
        "# longer differs. Regenerate: scripts/fidelity-check --write-known (keeps the classes",
        "# given here; guesses new ones, which a human checks). Comments: the reason of one run.",
        "",
    ]
    used: set[str] = set()
    body: list[str] = []
    for corpus in sorted(observed):
        reasons: dict[str, dict[str, str]] = defaultdict(dict)  # table -> run -> reason
        for run, differences in observed[corpus].items():
            for table, reason in differences.items():
                reasons[table][run] = reason
        by_class: dict[str, list[str]] = defaultdict(list)
        for table, old_entry in old.entries.get(corpus, {}).items():
            if old_entry.sometimes and table not in reasons:  # kept: timing decides
                reasons[table] = {}
        for table, per_run in reasons.items():
            old_entry = old.entries.get(corpus, {}).get(table)
            first_reason = next(iter(per_run.values()), "equal in this run (sometimes differs)")
            klass = old_entry.klass if old_entry else classify(
                first_reason, table in (inheritance or {}).get(corpus, set()))
            used.add(klass)
            where = [r for r in ALL_RUNS if r in per_run]
            sometimes = bool(old_entry and old_entry.sometimes)
            if sometimes:  # keep the runs it was seen in, whatever this run showed
                where = sorted(set(where) | set(old_entry.runs), key=ALL_RUNS.index)
            value = _toml_string(klass) if where == list(ALL_RUNS) and not sometimes else (
                f"{{ class = {_toml_string(klass)}, runs = {json.dumps(where)}"
                + (", sometimes = true" if sometimes else "") + " }")
            by_class[klass].append(f"{_toml_string(table)} = {value}  "
                                   f"# {_comment(first_reason)}")
        body += ["", f"[corpus.{corpus}]"]
        for klass in sorted(by_class):
            body.append(f"# {klass}: {limits[klass]}")
            body += sorted(by_class[klass])
    for klass in sorted(used):
        lines += [f"[class.{klass}]", f"limit = {_toml_string(limits[klass])}"]
    return "\n".join(lines + body) + "\n"
