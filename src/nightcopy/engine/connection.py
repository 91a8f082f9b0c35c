"""Connection strings and connections: parsing, redaction, session settings, clear errors,
and telling a lost connection from a failed statement."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from nightcopy.errors import ConfigError, ConnectError
from nightcopy.secrets import register_secret, scrub

# Session settings that make text-format COPY and checksums byte-identical on both sides.
TEXT_SETTINGS = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "TimeZone": "UTC",
    "lc_monetary": "C",
    "search_path": "",
}
# Settings the meaning of definition text depends on, forced on every session whatever the
# server, database or role defaults say (issue 12): with standard_conforming_strings off, a
# backslash in a definition's literal (read from a source that has it on) ends the literal
# early and the rest runs as SQL; an empty search_path makes every unqualified name in a
# definition fail instead of resolving to an object someone else planted earlier in the path
# (the DDL builders qualify everything, pg_catalog included, and pg_get_*def() output is
# qualified under an empty path); check_function_bodies keeps a function body checked when
# it is created; xmloption and client_encoding fix how values are read and sent.
DEFINITION_SETTINGS = {
    "standard_conforming_strings": "on",
    "backslash_quote": "safe_encoding",
    "search_path": "",
    "check_function_bodies": "on",
    "xmloption": "content",
    "client_encoding": "UTF8",
}
# Target sessions: never idle in a transaction for long (a killed worker's locks go away).
TARGET_SETTINGS = {"idle_in_transaction_session_timeout": "10min", "lock_timeout": "60s"}


def parse(dsn: str, role: str) -> dict[str, str]:
    """Parse a libpq DSN (URI or key=value) without ever echoing it back."""
    if not dsn or not dsn.strip():
        raise ConfigError(f"no {role} DSN given: pass --{role} or set NIGHTCOPY_{role.upper()}_DSN")
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise ConfigError(
            f"the {role} DSN is not a valid libpq connection string: use "
            "postgresql://user:password@host:port/dbname or 'host=... dbname=... user=...'"
        ) from None
    register_secret(params.get("password"))
    return params


def redact_dsn(dsn: str) -> str:
    """postgresql://user:***@host:port/db, for messages (never the password)."""
    try:
        p = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<invalid DSN>"
    register_secret(p.get("password"))
    user = p.get("user", "")
    auth = f"{user}:***@" if p.get("password") else (f"{user}@" if user else "")
    host = p.get("host", "")
    port = f":{p['port']}" if p.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{p.get('dbname', '')}"


def dsn_hint(role: str) -> str:
    """Where the worker takes a DSN from; commands that read a config restate it (the config
    file's key, or the SSM parameter), since that is where the value came from."""
    return (f"check the {role} DSN (--{role}, NIGHTCOPY_{role.upper()}_DSN or the {role}_dsn SSM "
            "parameter)")


def _explain(message: str, role: str, shown: str) -> str:
    m = message.lower()
    where = f"the {role} database ({shown})"
    hint = dsn_hint(role)
    if "root certificate file" in m:
        return (f"cannot verify {where}: its DSN asks to verify the server (sslmode=verify-ca "
                "or verify-full) and no root certificate is there; name the CA that signed the "
                f"server's certificate with sslrootcert=FILE in the DSN (the worker image uses "
                f"its RDS bundle, {CA_BUNDLE_ENV}); {hint}")
    if "does not match host name" in m:
        return (f"cannot verify {where}: the server's certificate is for another host name "
                f"({scrub(first_line(message))}); connect by the name the certificate holds (for "
                "RDS, the endpoint name, not an IP address or a CNAME)")
    if "certificate verify failed" in m or ("certificate" in m and "ssl" in m):
        return (f"cannot verify {where}: its certificate is not signed by the root "
                f"certificate given ({scrub(first_line(message))}); check sslrootcert (or "
                f"{CA_BUNDLE_ENV}) names the CA of that server")
    if "password authentication failed" in m or "authentication failed" in m:
        return f"cannot log in to {where}: the password or user is wrong; {hint}"
    if "no password supplied" in m:
        return f"cannot log in to {where}: the server wants a password and none was given; {hint}"
    if "does not exist" in m and "database" in m:
        return f"cannot connect to {where}: the database does not exist; {hint}"
    if "role" in m and "does not exist" in m:
        return f"cannot log in to {where}: the user does not exist; {hint}"
    if "timeout expired" in m:
        return (f"cannot reach {where}: the connection timed out; check the host, port and the "
                "network path (security groups, VPC, firewall)")
    if ("could not translate host name" in m or "connection refused" in m
            or "could not connect" in m or "no such file or directory" in m
            or "network is unreachable" in m or "no route to host" in m):
        return (f"cannot reach {where}: no server answers there; check the host and port "
                "and that the server is running and reachable from here")
    if "permission denied" in m or "not permitted" in m or "pg_hba.conf" in m:
        return f"the {role} server refused the connection ({scrub(first_line(message))}); {hint}"
    return f"cannot connect to {where}: {scrub(first_line(message))}"


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message and message.strip() else "unknown error"


class Connection(psycopg2.extensions.connection):
    """A psycopg2 connection that remembers nightcopy's settings for SET LOCAL."""

    nightcopy_settings: dict[str, str]


# The image's CA bundle (Dockerfile, buildspec.yml: the RDS certificate authorities): the root
# certificate of a connection whose DSN asks to verify the server (sslmode verify-ca or
# verify-full) without naming one. Not made libpq's default (PGSSLROOTCERT): with a root
# certificate present libpq treats sslmode=require as verify-ca, which would break targets
# whose certificate another CA signed.
CA_BUNDLE_ENV = "NIGHTCOPY_CA_BUNDLE"
_VERIFYING = ("verify-ca", "verify-full")


def root_certificate(params: dict[str, str]) -> str | None:
    """The bundle to verify this connection's server with, or None (libpq's own choice)."""
    sslmode = params.get("sslmode") or os.environ.get("PGSSLMODE")
    if sslmode not in _VERIFYING or params.get("sslrootcert") or os.environ.get("PGSSLROOTCERT"):
        return None
    bundle = os.environ.get(CA_BUNDLE_ENV)
    return bundle if bundle and os.path.isfile(bundle) else None


# Where a connection's password comes from when it is not libpq's own (the DSN, .pgpass,
# PGPASSWORD): per role ("source", "target"), a function of the DSN's fields called at every
# connect, since an RDS IAM authentication token expires 15 minutes after it is made and the
# workers reconnect for hours. Set by the command line (nightcopy.aws.rds_iam): the engine
# imports no boto3.
PasswordSource = Callable[[dict[str, str]], str]
_password_sources: dict[str, PasswordSource] = {}


def use_password_source(role: str, source: PasswordSource | None) -> None:
    """Give the `role`'s connections their password from `source` (None: libpq's own)."""
    if source is None:
        _password_sources.pop(role, None)
    else:
        _password_sources[role] = source


def connect(dsn: str, role: str, application_name: str, *,
            settings: dict[str, str] | None = None,
            startup_settings: dict[str, str] | None = None) -> Connection:
    """Open a connection with keepalives, a connect timeout and nightcopy's session settings.

    `startup_settings` go in the startup packet's options (-c name=value), never in SQL text:
    for a secret (the mask key) that pg_stat_activity.query and log_statement must not show."""
    params = parse(dsn, role)
    startup = " ".join("-c " + _startup_escape(f"{k}={v}")
                       for k, v in (startup_settings or {}).items())
    extra: dict[str, Any] = {
        "application_name": application_name[:63],
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 6,
    }
    if "connect_timeout" not in params:
        extra["connect_timeout"] = 15
    if startup:
        extra["options"] = (params.get("options", "") + " " + startup).strip()
    bundle = root_certificate(params)
    if bundle is not None:
        extra["sslrootcert"] = bundle
    source = _password_sources.get(role)
    if source is not None:
        password = source(params)
        register_secret(password)  # a token is a password: never in a message or a log
        extra["password"] = password
    try:
        conn = psycopg2.connect(dsn, connection_factory=Connection, **extra)
        if conn.get_parameter_status("standard_conforming_strings") != "on":
            # psycopg2 decides once, at connect time, how it quotes literals (E'' and doubled
            # backslashes, or not): switching the setting later with set_config() would make
            # its quoting wrong. So a session that starts with it off is opened again with it
            # on from the start (only then: some poolers refuse the `options` parameter).
            conn.close()
            extra["options"] = (params.get("options", "") + " " + startup +
                                " -c standard_conforming_strings=on").strip()
            conn = psycopg2.connect(dsn, connection_factory=Connection, **extra)
    except psycopg2.OperationalError as exc:
        error = ConnectError(_explain(str(exc), role, redact_dsn(dsn)))
        error.role, error.hint = role, dsn_hint(role)
        raise error from None
    if conn.server_version < 120000:
        conn.close()
        raise ConnectError(f"the {role} server runs PostgreSQL {conn.server_version // 10000}; "
                           "nightcopy needs PostgreSQL 12 or newer")
    conn.set_client_encoding("UTF8")
    all_settings = dict(TEXT_SETTINGS)
    all_settings.update(DEFINITION_SETTINGS)
    all_settings["statement_timeout"] = "0"
    if conn.server_version >= 140000:
        # A killed worker's server-side statement stops within a second instead of running on.
        all_settings["client_connection_check_interval"] = "1s"
    if conn.server_version >= 170000:
        # A copy's transactions are long by design (one table's load, the source snapshot).
        all_settings["transaction_timeout"] = "0"
    all_settings.update(settings or {})
    conn.nightcopy_settings = all_settings
    with conn.cursor() as cur:
        apply_settings(cur, all_settings, local=False)
    conn.commit()
    return conn


def _startup_escape(text: str) -> str:
    """libpq's options: a space separates arguments unless escaped, and \\ is a backslash."""
    return text.replace("\\", "\\\\").replace(" ", "\\ ")


def apply_settings(cur: psycopg2.extensions.cursor, settings: dict[str, str], local: bool
                   ) -> None:
    """One round trip of set_config() calls; local=True scopes them to the transaction."""
    calls = ", ".join(["pg_catalog.set_config(%s, %s, %s)"] * len(settings))
    params: list[object] = []
    for name, value in settings.items():
        params += [name, value, local]
    cur.execute(f"SELECT {calls}", params)


# --------------------------------------------------------------------------- lost connections

_LOST_MARKERS = ("no message from the libpq", "server closed the connection", "ssl syscall",
                 "could not receive data", "could not send data", "connection not open",
                 "eof detected", "terminating connection", "connection already closed")
# SQLSTATEs that mean the session is gone (class 08) or the server is going away.
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def looks_lost(exc: BaseException) -> bool:
    """Whether an error means the connection itself is gone (worth a retry)."""
    code = getattr(exc, "pgcode", None)
    if code:
        # The server answered: disk full, out of memory, a cancelled statement... are not
        # lost connections, and a retry would not help.
        return code.startswith(_LOST_STATES)
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    # libpq reports some cuts mid-COPY as a bare DatabaseError ("error with status
    # PGRES_COPY_OUT and no message from the libpq").
    return isinstance(exc, psycopg2.DatabaseError) and any(
        m in str(exc).lower() for m in _LOST_MARKERS)


def is_broken(conn: psycopg2.extensions.connection | None) -> bool:
    """Whether libpq already knows the connection is unusable (None: there is none)."""
    if conn is None:
        return False
    if conn.closed:
        return True
    try:
        return conn.info.status != 0  # libpq CONNECTION_OK
    except psycopg2.Error:
        return True


def is_alive(conn: psycopg2.extensions.connection) -> bool:
    """Ask the server: libpq learns of a restarted server only when it next talks to it."""
    if is_broken(conn):
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.commit()
        return True
    except psycopg2.Error:
        return False


def close_quietly(conn: psycopg2.extensions.connection) -> None:
    with contextlib.suppress(psycopg2.Error):
        conn.close()
