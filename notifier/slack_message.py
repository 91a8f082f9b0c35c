"""The nightly Slack report as Block Kit, built from the per-group summaries the workers wrote.

Stays within Slack's limits however many groups and tables there are: at most 50 blocks, section
text <= 3000 characters, at most 10 fields, and about 10k characters in total (Slack rejects
messages well below the sum of the per-block limits: `msg_blocks_too_long` near 13k). Long lists
end with "…and N more". Never one block per table.

Imports only the stdlib: installed as `nightcopy_notifier.slack_message` and also loaded as the
Lambda's top-level module `slack_message`.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_TOTAL_TEXT = 10_000
MAX_FALLBACK_TEXT = 1000

SLOWEST_TABLES = 10      # slowest tables listed in the success report
MAX_GROUP_LINES = 25     # group lines before "…and N more"
MAX_FAILED_GROUPS = 10   # failed groups with a section of their own
MAX_FAILED_TABLES = 5    # failed tables listed per failed group
MAX_ERROR_TEXT = 500     # characters of one error message
MAX_DRIFT_TABLES = 10    # tables whose schema changes are listed
MAX_DRIFT_TEXT = 300     # characters of one table's changes


def escape(text: Any) -> str:
    """Slack mrkdwn needs &, < and > escaped; error messages can contain all three."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_seconds(seconds: float | int | None) -> str:
    if seconds is None:
        return "?"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def fmt_count(n: float | int | None) -> str:
    return "?" if n is None else f"{int(n):,}"


def count(n: float | int | None, noun: str) -> str:
    """`1 table`, `2,000 tables`."""
    return f"{fmt_count(n)} {noun}{'' if n == 1 else 's'}"


def fmt_bytes(n: float | int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


def _lines(items: list[str], limit: int, max_chars: int = MAX_SECTION_TEXT) -> str:
    """Join up to `limit` lines, stopping early at max_chars, and say how many were left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(items):
        if i >= limit or used + len(line) + 40 > max_chars:
            out.append(f"…and {len(items) - i} more")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def _fields(pairs: list[tuple[str, str]]) -> dict:
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", MAX_FIELD_TEXT)}
                       for k, v in pairs[:MAX_FIELDS]]}


def _header(text: str) -> dict:
    return {"type": "header",
            "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT), "emoji": True}}


def _context(parts: list[str]) -> dict:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(p, MAX_FIELD_TEXT)} for p in parts[:10]]}


def _totals(summaries: list[dict]) -> dict[str, float]:
    return {
        "tables": sum(int(s.get("tables") or 0) for s in summaries),
        "failed": sum(int(s.get("failed") or 0) for s in summaries),
        "rows": sum(int(s.get("rows") or 0) for s in summaries),
        "bytes": sum(int(s.get("bytes") or 0) for s in summaries),
        # groups run in parallel: the night took as long as its slowest group
        "wall": max((float(s.get("seconds") or 0) for s in summaries), default=0.0),
        "worker": sum(float(s.get("seconds") or 0) for s in summaries),
    }


def _group_line(s: dict) -> str:
    mark = "✅" if s.get("status") == "succeeded" else "❌"
    failed = f", {s.get('failed')} failed" if s.get("failed") else ""
    return (f"{mark} *{escape(s.get('group', '?'))}*: {count(s.get('tables'), 'table')}"
            f"{failed}, {count(s.get('rows'), 'row')}, {fmt_bytes(s.get('bytes'))}, "
            f"{fmt_seconds(s.get('seconds'))}")


def _slowest_lines(summaries: list[dict]) -> list[str]:
    rows = [(r, s.get("group")) for s in summaries for r in (s.get("results") or [])
            if r.get("status") == "copied"]
    rows.sort(key=lambda rg: float(rg[0].get("seconds") or 0), reverse=True)
    return [f"`{escape(r.get('table'))}` ({escape(g)}): {fmt_seconds(r.get('seconds'))}, "
            f"{fmt_count(r.get('rows'))} rows" for r, g in rows]


def _links(run_id: str, execution_url: str | None) -> dict:
    parts = [f"run `{escape(run_id)}`"]
    if execution_url:
        parts.append(f"<{execution_url}|execution graph>")
    return _context(parts)


def _success(summaries: list[dict], run_id: str, execution_url: str | None) -> tuple[str, list]:
    t = _totals(summaries)
    groups = sorted(summaries, key=lambda s: str(s.get("group")))
    title = f"✅ nightcopy {run_id} succeeded"
    text = (f"nightcopy {run_id} succeeded: {count(len(groups), 'group')}, "
            f"{count(t['tables'], 'table')}, {count(t['rows'], 'row')} in "
            f"{fmt_seconds(t['wall'])}")
    blocks = [
        _header(title),
        _fields([("Groups", str(len(groups))), ("Tables", fmt_count(t["tables"])),
                 ("Rows", fmt_count(t["rows"])), ("Data", fmt_bytes(t["bytes"])),
                 ("Night took", fmt_seconds(t["wall"])),
                 ("Worker time", fmt_seconds(t["worker"]))]),
    ]
    if groups:
        blocks.append(_section("*Groups*\n" + _lines([_group_line(s) for s in groups],
                                                     MAX_GROUP_LINES)))
    slowest = _slowest_lines(summaries)
    if slowest:
        shown = slowest[:SLOWEST_TABLES]
        body = _lines(shown, SLOWEST_TABLES)
        if len(slowest) > len(shown):
            body += f"\n…and {len(slowest) - len(shown)} more tables"
        blocks.append(_section("*Slowest tables*\n" + body))
    blocks.append(_links(run_id, execution_url))
    return text, blocks


def _failed_group_text(fg: dict, summary: dict | None, budget: int) -> str:
    """One failed group's section, in about `budget` characters (shared by all failed groups)."""
    error_limit = max(80, min(MAX_ERROR_TEXT, budget // 4))
    name = escape(fg.get("group", "?"))
    lines = [f"❌ *{name}* failed"]
    if fg.get("error"):
        lines.append(f"> {escape(clip(str(fg['error']), error_limit))}")
    if summary:
        failed = [r for r in (summary.get("results") or []) if r.get("status") == "failed"]
        items = [f"• `{escape(r.get('table'))}`: "
                 f"{escape(clip(str(r.get('error') or 'failed'), error_limit))}"
                 for r in failed]
        if not items:
            items = [f"• `{escape(t)}`" for t in summary.get("failed_tables") or []]
        if items:
            lines.append(_lines(items, MAX_FAILED_TABLES, max(200, budget - 2 * error_limit)))
        lines.append(f"{count(summary.get('tables'), 'table')} listed, "
                     f"{fmt_count(summary.get('failed'))} failed")
    else:
        lines.append("_no report from this group (the worker did not get far enough)_")
    if fg.get("logs_url"):
        lines.append(f"<{fg['logs_url']}|build logs>")
    return "\n".join(lines)


def _failure(summaries: list[dict], failed_groups: list[dict], run_id: str,
             execution_url: str | None) -> tuple[str, list]:
    by_group = {str(s.get("group")): s for s in summaries}
    failed_names = {str(fg.get("group")) for fg in failed_groups}
    ok = [s for s in summaries if str(s.get("group")) not in failed_names]
    n_groups = len(failed_names | set(by_group))
    title = f"❌ nightcopy {run_id} failed: {len(failed_groups)} of {count(n_groups, 'group')}"
    names = ", ".join(str(fg.get("group")) for fg in failed_groups[:10])
    more = f" and {len(failed_groups) - 10} more" if len(failed_groups) > 10 else ""
    text = f"nightcopy {run_id} FAILED: {'group' if len(failed_groups) == 1 else 'groups'} {names}{more}"
    blocks: list[dict] = [_header(title)]
    shown = failed_groups[:MAX_FAILED_GROUPS]
    # leave room for the succeeded groups and the links within the total cap
    budget = min(MAX_SECTION_TEXT, (MAX_TOTAL_TEXT - 3000) // max(1, len(shown)))
    for fg in shown:
        blocks.append(_section(_failed_group_text(fg, by_group.get(str(fg.get("group"))),
                                                  budget)))
    if len(failed_groups) > MAX_FAILED_GROUPS:
        rest = [str(fg.get("group")) for fg in failed_groups[MAX_FAILED_GROUPS:]]
        # Every failed group is named: this list may use its whole section (the succeeded
        # groups' section is the first to go if the message grows too long).
        prefix = f"…and {len(rest)} more failed groups: "
        blocks.append(_section(prefix + escape(clip(", ".join(rest),
                                                    MAX_SECTION_TEXT - len(prefix)))))
    if ok:
        t = _totals(ok)
        blocks.append(_section(
            f"*{count(len(ok), 'group')} succeeded*: {count(t['tables'], 'table')}, "
            f"{count(t['rows'], 'row')}\n"
            + _lines([_group_line(s) for s in sorted(ok, key=lambda s: str(s.get('group')))],
                     MAX_GROUP_LINES, MAX_SECTION_TEXT - 200)))
    blocks.append(_links(run_id, execution_url))
    return text, blocks


def _block_text(block: dict) -> int:
    n = len(block.get("text", {}).get("text", "")) if isinstance(block.get("text"), dict) else 0
    n += sum(len(f.get("text", "")) for f in block.get("fields", []))
    n += sum(len(e.get("text", "")) for e in block.get("elements", []))
    return n


def _enforce_limits(blocks: list[dict]) -> list[dict]:
    """Drop middle blocks (never the header or the closing links) until within the caps."""
    head, body, tail = blocks[:1], blocks[1:-1], blocks[-1:]
    dropped = 0
    while body and (len(head) + len(body) + len(tail) + (1 if dropped else 0) > MAX_BLOCKS
                    or sum(map(_block_text, head + body + tail)) > MAX_TOTAL_TEXT):
        body.pop()
        dropped += 1
    if dropped:
        body.append(_context([f"…and {dropped} more sections left out (message size limit)"]))
    return head + body + tail


def _drift_section(summaries: list[dict]) -> dict | None:
    """What changed in the source definitions tonight (the reports' `schema_changes`, from the
    schema-drift report), one line per table, naming the target views a change may break."""
    lines = []
    for s in sorted(summaries, key=lambda s: str(s.get("group"))):
        for change in s.get("schema_changes") or []:
            text = "; ".join(str(c) for c in change.get("changes") or [])
            views = change.get("views") or []
            if views:
                text += f" (may break view{'s' if len(views) > 1 else ''} {', '.join(views)})"
            lines.append(f"• `{escape(change.get('table'))}`: {escape(clip(text, MAX_DRIFT_TEXT))}")
    if not lines:
        return None
    return _section("*Schema changes on the source*\n"
                    + _lines(lines, MAX_DRIFT_TABLES, MAX_SECTION_TEXT - 100))


def _stale_section(summaries: list[dict]) -> dict | None:
    """The tables whose newest row is older than their max_age (the reports' `stale_tables`,
    from the freshness check): the source may have stopped being written to, which a row count
    cannot show. A warning: the copy itself succeeded."""
    lines = []
    for s in sorted(summaries, key=lambda s: str(s.get("group"))):
        for t in s.get("stale_tables") or []:
            newest = t.get("newest")
            seen = (f"newest {t.get('column')} {newest}" if newest is not None
                    else "no rows")
            lines.append(f"• `{escape(t.get('table'))}`: {escape(clip(seen, MAX_DRIFT_TEXT))}, "
                         f"older than max_age {escape(t.get('max_age'))}")
    if not lines:
        return None
    return _section("*:warning: Stale source tables*\n"
                    + _lines(lines, MAX_DRIFT_TABLES, MAX_SECTION_TEXT - 100))


def build_report(summaries: list[dict], *, run_id: str, execution_url: str | None = None,
                 failed_groups: list[dict] | None = None) -> dict:
    """The Slack message for one night: `{"text": fallback, "blocks": [...]}`.

    `summaries`: the per-group report objects the workers wrote (`--report-uri`).
    `failed_groups`: `[{"group", "error", "logs_url"}]`; empty or None gives the success form.
    """
    if failed_groups:
        text, blocks = _failure(summaries, failed_groups, run_id, execution_url)
    else:
        text, blocks = _success(summaries, run_id, execution_url)
    for extra in (_drift_section(summaries), _stale_section(summaries)):
        if extra is not None:
            blocks.insert(len(blocks) - 1, extra)  # before the links, the last block of both
    return {"text": clip(text, MAX_FALLBACK_TEXT), "blocks": _enforce_limits(blocks)}


def build_finish_report(summaries: list[dict], *, run_id: str, execution_name: str,
                        execution_url: str | None, failed_groups: list[dict],
                        rerun_groups: list[str]) -> dict:
    """The message of an execution that finishes the failed night `run_id`: which night it
    completes and that night's final state. `summaries` are all of the night's group reports
    (those of the earlier execution(s) too: the same run id, the same report location)."""
    complete = not failed_groups and all(s.get("status") == "succeeded" for s in summaries)
    message = build_report(summaries, run_id=run_id, execution_url=execution_url,
                           failed_groups=failed_groups)
    state = "the night is complete" if complete else "the night is still incomplete"
    again = ", ".join(rerun_groups[:10]) + (" …" if len(rerun_groups) > 10 else "")
    message["text"] = clip(f"nightcopy {execution_name} finished night {run_id}: {state} "
                           f"(copied again: {again or 'none'}). {message['text']}",
                           MAX_FALLBACK_TEXT)
    mark = "✅" if complete else "❌"
    blocks = message["blocks"]
    blocks[0] = _header(f"{mark} night {run_id}: {'complete' if complete else 'still incomplete'}")
    blocks.insert(1, _section(
        f"`{escape(execution_name)}` finished the failed night `{escape(run_id)}`: it copied "
        f"again {escape(again) or 'no group'}, resuming the night's run (tables the night had "
        f"copied were skipped). Final state: *{state}*."))
    message["blocks"] = _enforce_limits(blocks)
    return message


def build_alert(title: str, lines: list[str], *, execution_url: str | None = None) -> dict:
    """A short failure message for what the state machine could not report itself
    (timed out, aborted, never started)."""
    blocks = [_header(f"❌ {title}"),
              _section("\n".join(escape(line) for line in lines) or title)]
    if execution_url:
        blocks.append(_context([f"<{execution_url}|execution graph>"]))
    return {"text": clip(f"nightcopy: {title}", MAX_FALLBACK_TEXT), "blocks": blocks}
