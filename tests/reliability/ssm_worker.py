"""Run the real `nightcopy` CLI in a process of its own with moto's SSM in that process.

    python ssm_worker.py SPEC_JSON ARGS...

SPEC: {"parameters": {"/prefix/name": ["String"|"SecureString", value], ...},
       "deny": "iam"|"aws"}
deny "iam": the worker's credentials belong to an IAM user with no policy (moto enforces IAM);
deny "aws": GetParameters answers exactly as AWS does for a role without ssm:GetParameters
(HTTP 400, {"__type": "AccessDeniedException"}), at botocore's HTTP boundary.
Nothing leaves the process: moto intercepts every AWS call. The exit code is the CLI's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.conftest
from tests.conftest import FAKE_AWS_ENV, REAL_AWS_SETTINGS  # noqa: E402

# The same fake AWS environment as the in-process `moto_aws` fixture, set before boto3 loads.
os.environ.update(FAKE_AWS_ENV)
for key in REAL_AWS_SETTINGS:
    os.environ.pop(key, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import set_initial_no_auth_action_count  # noqa: E402


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kw):
        yield self._body


def _aws_denial(request, **_kw):
    from botocore.awsrequest import AWSResponse

    body = json.dumps({
        "__type": "AccessDeniedException",
        "message": "User: arn:aws:sts::123456789012:assumed-role/nightcopy-worker/build is "
                   "not authorized to perform: ssm:GetParameters on resource: "
                   "arn:aws:ssm:eu-west-1:123456789012:parameter/nightcopy/test/source_dsn "
                   "because no identity-based policy allows the ssm:GetParameters action"}).encode()
    return AWSResponse(request.url, 400, {"x-amzn-requestid": "denied-1",
                                          "content-type": "application/x-amz-json-1.1"},
                       _Raw(body))


def _setup(spec: dict) -> None:
    session = boto3.Session()
    ssm = session.client("ssm")
    for name, (kind, value) in spec.get("parameters", {}).items():
        ssm.put_parameter(Name=name, Type=kind, Value=value, Overwrite=True)
    if spec.get("deny") == "aws":
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-send.ssm.GetParameters", _aws_denial)
    if spec.get("deny") == "iam":
        iam = session.client("iam")
        iam.create_user(UserName="nightcopy-worker")
        key = iam.create_access_key(UserName="nightcopy-worker")["AccessKey"]
        os.environ["AWS_ACCESS_KEY_ID"] = key["AccessKeyId"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = key["SecretAccessKey"]


def main() -> int:
    spec = json.loads(sys.argv[1])
    args = sys.argv[2:]
    from nightcopy.cli.main import main as cli_main

    def run() -> int:
        _setup(spec)
        try:
            cli_main.main(args=args, prog_name="nightcopy", standalone_mode=True)
        except SystemExit as exc:
            return int(exc.code or 0) if not isinstance(exc.code, str) else 1
        return 0

    with mock_aws():
        if spec.get("deny") == "iam":
            # the setup's calls run unauthenticated; every later one is checked against IAM
            allowed = len(spec.get("parameters", {})) + 2
            return set_initial_no_auth_action_count(allowed)(run)()
        return run()


if __name__ == "__main__":
    sys.exit(main())
