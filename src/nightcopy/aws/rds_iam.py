"""RDS IAM database authentication: a connection's password is a token from boto3, not a stored
secret (options `source_auth` / `target_auth` = `rds-iam`).

The token is made locally (a SigV4-presigned request: no call to AWS) from the worker's own
credentials, the CodeBuild role on AWS, whose policy then needs `rds-db:connect` on the
database user (template.yaml adds it when the stack is told the user: SourceIamDbUser /
TargetIamDbUser). It is valid for 15 minutes, so every connection asks for a new one. RDS
accepts it only over TLS: the DSN's sslmode must not be disable/allow (prefer works; use
verify-full with the RDS CA bundle). The DSN names the host, the port (default 5432) and the
user; a password in it is ignored.
"""

from __future__ import annotations

import os
import re
from typing import Any

from nightcopy.errors import ConfigError

# cluster.abc123.eu-west-1.rds.amazonaws.com (also .rds.amazonaws.com.cn)
_RDS_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d)\.rds\.amazonaws\.com(?:\.cn)?$")
_NO_TLS = ("disable", "allow")


def region_of(host: str) -> str | None:
    """The AWS region an RDS endpoint is in, from its name; else the environment's."""
    m = _RDS_HOST.search(host)
    if m:
        return m.group(1)
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def token_source(role: str, *, client: Any = None):
    """A password source (nightcopy.engine.connection.use_password_source) for `role`."""
    def token(params: dict[str, str]) -> str:
        host, user = params.get("host", ""), params.get("user", "")
        if not host or host.startswith("/") or not user:
            raise ConfigError(f"{role}_auth rds-iam: the {role} DSN must name the host and the "
                              "user (postgresql://USER@HOST:PORT/DB): the token is for that "
                              "user on that endpoint")
        if params.get("sslmode") in _NO_TLS:
            raise ConfigError(f"{role}_auth rds-iam: RDS accepts an IAM token only over TLS; "
                              f"remove sslmode={params['sslmode']} from the {role} DSN (use "
                              "verify-full)")
        region = region_of(host)
        if region is None:
            raise ConfigError(f"{role}_auth rds-iam: cannot tell the region of {host}: set "
                              "AWS_REGION")
        rds = client
        if rds is None:
            import boto3

            rds = boto3.client("rds", region_name=region)
        try:
            return str(rds.generate_db_auth_token(DBHostname=host,
                                                  Port=int(params.get("port") or 5432),
                                                  DBUsername=user, Region=region))
        except Exception as exc:  # no credentials: botocore's NoCredentialsError and kin
            raise ConfigError(f"{role}_auth rds-iam: cannot make an authentication token: "
                              f"{type(exc).__name__}: {exc}; give the worker AWS credentials "
                              "(on AWS: its role, with rds-db:connect)") from None
    return token
