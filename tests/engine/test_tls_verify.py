"""sslmode=verify-full against a server with its own certificate authority (Debian's PostgreSQL
15, built with OpenSSL; the embedded 18 has no SSL): the image's CA bundle (NIGHTCOPY_CA_BUNDLE,
the RDS bundle on AWS) is libpq's root certificate when the DSN names none, only for the modes
that verify, and each way verification can fail is one clear line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightcopy.engine.connection import CA_BUNDLE_ENV, connect
from nightcopy.errors import ConnectError
from tests.engine.pg15 import pg15_cluster


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _authority(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def _certificates(base: Path, data: Path) -> None:
    _authority(base, "test-ca")
    _authority(base, "other-ca")
    # the server's certificate: for "localhost" only, signed by test-ca
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
             "server.key", "-out", "server.csr", cwd=base)
    (base / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "test-ca.pem", "-CAkey", "test-ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
             cwd=base)
    if os.geteuid() == 0:
        shutil.chown(base / "server.key", "embedded_postgres")
    os.chmod(base / "server.key", 0o600)
    with (data / "pg_hba.conf").open("w") as hba:
        hba.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"ssl = on\nssl_cert_file = '{base}/server.crt'\n"
                   f"ssl_key_file = '{base}/server.key'\n")


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, Path]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pg15_cluster("nightcopy-tls-", f"-p {port}", host="127.0.0.1",
                      prepare=_certificates) as base:
        yield port, base


@pytest.fixture
def no_default_root(monkeypatch, tmp_path):
    # libpq's own default root certificate is ~/.postgresql/root.crt: none here
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("PGSSLROOTCERT", "PGSSLMODE", CA_BUNDLE_ENV):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def _dsn(port: int, sslmode: str, host: str = "localhost") -> str:
    return f"host={host} port={port} user=postgres dbname=postgres sslmode={sslmode}"


def _connects_over_tls(dsn: str) -> bool:
    conn = connect(dsn, "source", "tls-test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def test_verify_full_uses_the_image_bundle(tls_server, no_default_root):
    port, base = tls_server
    no_default_root.setenv(CA_BUNDLE_ENV, str(base / "test-ca.pem"))
    assert _connects_over_tls(_dsn(port, "verify-full"))


def test_verify_full_without_a_root_certificate_is_one_clear_line(tls_server, no_default_root):
    port, _ = tls_server
    with pytest.raises(ConnectError, match="no root certificate is there; name the CA") as info:
        connect(_dsn(port, "verify-full"), "source", "tls-test")
    assert "\n" not in str(info.value)


def test_a_certificate_of_another_authority_is_refused(tls_server, no_default_root):
    port, base = tls_server
    no_default_root.setenv(CA_BUNDLE_ENV, str(base / "other-ca.pem"))
    with pytest.raises(ConnectError, match="is not signed by the root certificate given"):
        connect(_dsn(port, "verify-full"), "target", "tls-test")


def test_a_certificate_for_another_host_name_is_refused(tls_server, no_default_root):
    port, base = tls_server
    no_default_root.setenv(CA_BUNDLE_ENV, str(base / "test-ca.pem"))
    with pytest.raises(ConnectError, match="certificate is for another host name"):
        connect(_dsn(port, "verify-full", host="127.0.0.1"), "source", "tls-test")


def test_the_bundle_is_not_forced_on_modes_that_do_not_verify(tls_server, no_default_root):
    """With a root certificate at hand libpq treats sslmode=require as verify-ca: the bundle
    is given to verify-ca/verify-full DSNs only, so a require DSN still connects."""
    port, base = tls_server
    no_default_root.setenv(CA_BUNDLE_ENV, str(base / "other-ca.pem"))
    assert _connects_over_tls(_dsn(port, "require"))
    # a DSN naming its own sslrootcert keeps it
    assert _connects_over_tls(_dsn(port, "verify-full") + f" sslrootcert={base / 'test-ca.pem'}")
