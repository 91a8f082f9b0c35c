"""Fixtures for the AWS layer: moto (pinned 5.2.5), a local Slack stand-in, the Lambda modules."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType, SimpleNamespace

import boto3
import pytest
from aws_harness import (  # tests/aws is on sys.path (pytest rootdir-less conftest)
    BUCKET,
    PREFIX,
    REGION,
    ROOT,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

# The Lambdas' code folders are their own roots (SAM CodeUri): their modules import each other
# as top-level modules, exactly as in the Lambda runtime.
for folder in ("notifier", "starter"):
    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)


def load_lambda(folder: str) -> ModuleType:
    """Import `<folder>/app.py` under a unique name (both Lambdas call theirs app.py)."""
    name = f"{folder}_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def retry_waits(monkeypatch) -> list[float]:
    """Record the ASL's Retry waits instead of sleeping them (60 s per failed build on AWS)."""
    waits: list[float] = []
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=waits.append))
    return waits


@dataclass
class SlackStandIn:
    """What the local Slack server received, and what it answers next."""

    url: str
    requests: list[dict] = field(default_factory=list)
    # (status, headers, body) answered before the normal "ok" answer
    script: list[tuple[int, dict, str]] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000/B000/XXXXSECRETXXXX"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def messages(self) -> list[dict]:
        """Bodies of the posts that Slack accepted (answered 200)."""
        return [r["body"] for r in self.requests if r["status"] == 200]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    state = SlackStandIn(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                body = json.loads(raw)
            else:  # WebClient may send form data
                from urllib.parse import parse_qs
                body = {k: v[0] for k, v in parse_qs(raw).items()}
                if isinstance(body.get("blocks"), str):
                    body["blocks"] = json.loads(body["blocks"])
            with lock:
                status, headers, answer = state.script.pop(0) if state.script else (
                    200, {}, None)
            if answer is None:
                if self.path.startswith("/api/"):
                    answer = json.dumps({"ok": True, "channel": body.get("channel"), "ts": "1.0"})
                    headers = {"Content-Type": "application/json"}
                else:
                    answer = "ok"
            with lock:
                state.requests.append({"path": self.path, "status": status, "body": body,
                                       "authorization": self.headers.get("Authorization")})
            data = answer.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def notifier_app() -> Iterator[ModuleType]:
    module = load_lambda("notifier")
    module.reset_cache()
    yield module
    module.reset_cache()


@pytest.fixture
def starter_app() -> ModuleType:
    module = load_lambda("starter")
    module._sfn = None
    return module


@pytest.fixture
def stack(moto_aws, slack, notifier_app, monkeypatch):
    """SSM settings, the reports bucket and the notifier's environment, as template.yaml sets."""
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{PREFIX}/slack_webhook_url", Value=slack.webhook_url,
                      Type="SecureString")
    boto3.client("s3").create_bucket(Bucket=BUCKET,
                                     CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("NIGHTCOPY_SSM_PREFIX", PREFIX)
    monkeypatch.setenv("NIGHTCOPY_REPORT_URI", f"s3://{BUCKET}/reports")
    return ssm
