"""Keeping secrets out of every output.

Every password, webhook URL or token nightcopy learns is registered here, and every line it
prints (JSON events, errors, reports, ledger text) goes through `scrub` first. Redacting at the
output boundary also catches secrets echoed back inside driver or server messages.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()

# user:password@ in URIs, password=... in key/value DSNs, webhook and token shapes.
_PATTERNS = [
    (re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),
    (re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE), r"\1***"),
    (re.compile(r"https://hooks\.slack\.com/[^\s\"']+"), "https://hooks.slack.com/***"),
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), "xox?-***"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret so that scrub() removes it wherever it shows up."""
    if value and len(value) >= 3:
        with _lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
