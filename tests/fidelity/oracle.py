"""An oracle for "the reporting copy is faithful": compares tables on two servers the way a user
would, sharing no code with the engine.

- Definitions: one `pg_dump --schema-only` per side, with the same pg_dump binary (the newest,
  which dumps every older server) and `--table-and-children` for each table, split into pg_dump's
  own "-- Name: ...; Type: ...; Schema: ..." entries, normalised for what legitimately differs
  (ownership, the dumping server's version lines) and for what the README documents as not copied
  (triggers, rules, row-level security policies, publications, extended statistics of the
  source). Entries are compared per object and each difference is charged to the table it names.
- Content: an order-independent hash of every row's text form per table (sum of 64-bit prefixes
  of md5), plus the row count, under one fixed set of session settings on both sides.
- Sequences: last_value and is_called of every sequence the dump mentions.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

# The same text form on both sides; nothing here comes from the engine.
SESSION_SETTINGS = {
    "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "TimeZone": "UTC",
    "extra_float_digits": "3", "bytea_output": "hex", "lc_monetary": "C", "search_path": "",
}

# pg_dump entry types the README lists as "not copied from the source".
NOT_COPIED_TYPES = {"TRIGGER", "RULE", "POLICY", "ROW SECURITY", "PUBLICATION TABLE",
                    "STATISTICS", "PUBLICATION TABLES IN SCHEMA"}
# Objects that are not per-table: created on demand on the target, compared only through the
# tables that use them (a missing type fails the table's own CREATE, which shows as a difference).
SHARED_TYPES = {"SCHEMA", "TYPE", "DOMAIN", "COLLATION", "EXTENSION", "FUNCTION", "SEQUENCE",
                "ACCESS METHOD", "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY",
                "SERVER", "FOREIGN DATA WRAPPER", "OPERATOR", "OPERATOR CLASS",
                "OPERATOR FAMILY", "CAST", "TRANSFORM", "AGGREGATE", "CONVERSION",
                "PROCEDURE", "LANGUAGE", "SHELL TYPE", "EVENT TRIGGER"}

_ENTRY = re.compile(r"^-- Name: (?P<name>.*?); Type: (?P<type>.*?); Schema: (?P<schema>.*?);"
                    r" Owner: .*$", re.M)


@dataclass
class Entry:
    type: str
    schema: str
    name: str
    text: str


@dataclass
class Verdict:
    table: str
    definition: list[str] = field(default_factory=list)  # what differs, one line each
    content: str | None = None

    @property
    def ok(self) -> bool:
        return not self.definition and self.content is None


def connect(dsn: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in SESSION_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    return conn


def dump_entries(pg_dump: Path, dsn: str, tables: list[str]) -> list[Entry]:
    args = [str(pg_dump), "--schema-only", "--no-owner", "--dbname", dsn]
    for table in tables:
        args += ["--table-and-children", table]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {proc.stderr.strip()[:500]}")
    text = proc.stdout
    entries: list[Entry] = []
    matches = list(_ENTRY.finditer(text))
    # pg_dump says a table's access method and tablespace by SET lines that hold until changed;
    # they stand after the previous entry's text, so they are tracked across entries.
    state = {"default_table_access_method": "heap", "default_tablespace": "''"}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body_lines = []
        pending = dict(state)
        for line in text[m.end():end].splitlines():
            setting = re.match(r"^SET (default_table_access_method|default_tablespace) = (.*);$",
                               line)
            if setting:
                pending[setting[1]] = setting[2]
            elif line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict")):
                body_lines.append(line)
        body = "\n".join(body_lines).strip()
        # (a partitioned table has no access method of its own before PostgreSQL 17)
        if m["type"] in ("TABLE", "INDEX", "MATERIALIZED VIEW") and "PARTITION BY" not in body:
            body = f"[{', '.join(f'{k}={v}' for k, v in sorted(state.items()))}] {body}"
        entries.append(Entry(m["type"], m["schema"], m["name"], body))
        state = pending
    return entries


def _owner_table(entry: Entry, tables: set[str]) -> str | None:
    """The copied table an entry belongs to (by pg_dump's naming), or None."""
    schema = entry.schema
    candidates = [entry.name, entry.name.split(" ", 1)[0]]
    for name in candidates:
        key = f"{schema}.{name}"
        if key in tables:
            return key
    # constraints, indexes, defaults, ACLs and comments name their table inside the statement
    m = re.search(r"(?:ON|TABLE(?: ONLY)?|INDEX .*? ON(?: ONLY)?) ([\w\"$.]+)", entry.text)
    if m:
        return m.group(1).replace('"', "")
    return None


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def compare_definitions(pg_dump: Path, source_dsn: str, target_dsn: str,
                        tables: list[str]) -> dict[str, list[str]]:
    """Differences per table: entries missing on the target, extra, or different."""
    plain = {t.replace('"', "") for t in tables}

    def keyed(dsn: str) -> dict[tuple[str, str, str], Entry]:
        out = {}
        for e in dump_entries(pg_dump, dsn, tables):
            if e.type in NOT_COPIED_TYPES or e.type in SHARED_TYPES:
                continue
            out[(e.type, e.schema, e.name)] = e
        return out

    src, tgt = keyed(source_dsn), keyed(target_dsn)
    diffs: dict[str, list[str]] = defaultdict(list)
    for key in sorted(set(src) | set(tgt)):
        a, b = src.get(key), tgt.get(key)
        entry = a or b
        assert entry is not None
        owner = _owner_table(entry, plain) or f"{entry.schema}.{entry.name}"
        what = f"{key[0]} {key[1]}.{key[2]}"
        if b is None:
            diffs[owner].append(f"missing on the target: {what}")
        elif a is None:
            diffs[owner].append(f"only on the target: {what}")
        elif _normal(a.text) != _normal(b.text):
            diffs[owner].append(f"differs: {what}: source {_normal(a.text)[:300]!r} "
                                f"target {_normal(b.text)[:300]!r}")
    return dict(diffs)


def content_hash(conn, table: str) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*), COALESCE(sum(('x' || substr(md5(t::text), 1, 15))"
                    f"::bit(60)::bigint), 0) FROM {table} t")
        count, total = cur.fetchone()
    return int(count), int(total)


def compare_content(source_dsn: str, target_dsn: str, tables: list[str]) -> dict[str, str]:
    src, tgt = connect(source_dsn), connect(target_dsn)
    out: dict[str, str] = {}
    try:
        for table in tables:
            try:
                a = content_hash(src, table)
            except psycopg2.Error as exc:
                out[table] = f"source unreadable: {str(exc).splitlines()[0]}"
                continue
            try:
                b = content_hash(tgt, table)
            except psycopg2.Error as exc:
                out[table] = f"target unreadable: {str(exc).splitlines()[0]}"
                continue
            if a != b:
                out[table] = f"rows differ: source {a[0]} rows, target {b[0]} rows (hash differs)"
    finally:
        src.close()
        tgt.close()
    return out


def sequence_states(dsn: str) -> dict[str, tuple[int, bool]]:
    conn = connect(dsn)
    out = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences "
                        "WHERE schemaname NOT LIKE 'nightcopy%'")
            for (name,) in cur.fetchall():
                cur.execute(f"SELECT last_value, is_called FROM {name}")
                out[name] = tuple(cur.fetchone())
    finally:
        conn.close()
    return out


def judge(pg_dump: Path, source_dsn: str, target_dsn: str, tables: list[str]) -> list[Verdict]:
    definitions = compare_definitions(pg_dump, source_dsn, target_dsn, tables)
    content = compare_content(source_dsn, target_dsn, tables)
    verdicts = []
    for table in tables:
        plain = table.replace('"', "")
        verdicts.append(Verdict(table, definitions.get(plain, []), content.get(table)))
    src_seq, tgt_seq = sequence_states(source_dsn), sequence_states(target_dsn)
    for name, state in sorted(tgt_seq.items()):
        if name in src_seq and src_seq[name] != state:
            verdicts.append(Verdict(f"sequence {name}",
                                    [f"sequence state source {src_seq[name]} target {state}"]))
    return verdicts
