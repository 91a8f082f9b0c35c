"""docs/events.md is generated from the declaration; the README points at it."""

from __future__ import annotations

from pathlib import Path

from nightcopy.engine import event_doc, event_schema

ROOT = Path(__file__).resolve().parents[2]


def test_docs_events_md_is_what_the_declaration_renders():
    committed = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert committed == event_doc.render(), (
        "docs/events.md is stale: run `python -m nightcopy.engine.event_doc docs/events.md`")


def test_the_doc_names_every_event_and_field():
    text = event_doc.render()
    for spec in event_schema.EVENTS.values():
        assert f"## `{spec.name}`" in text
        for f in spec.fields:
            assert f"| `{f.name}` |" in text


def test_the_readme_links_the_event_doc_instead_of_listing_events():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/events.md)" in readme
    assert "Other events:" not in readme
