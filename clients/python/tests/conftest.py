"""Fixtures: a database of its own per test (dropped after), a receiver on 127.0.0.1, and a real tailhook sidecar."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import psycopg
import pytest

# (Not TAILHOOK_* names: the binary reads every such variable as configuration.)
ADMIN_URL = os.environ.get("PYTEST_TAILHOOK_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("PYTEST_TAILHOOK_BINARY", REPO / "target" / "debug" / "tailhook"))


def binary_env(**extra: str) -> dict:
    """The environment for the binary: this one without tailhook's configuration variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILHOOK_") and k not in ("DATABASE_URL", "RUST_LOG")}
    env.update(extra)
    return env


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def wait_for(what: str, check: Callable[[], bool], limit: float = 20.0) -> None:
    """Polls `check` every 20 ms until it is true; fails after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Database:
    name: str
    url: str

    def connect(self, **kw: object) -> psycopg.Connection:
        return psycopg.connect(self.url, **kw)  # type: ignore[arg-type]

    def scalar(self, sql: str, *params: object) -> object:
        with self.connect(autocommit=True) as conn:
            row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
            return row[0] if row else None


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True)


@pytest.fixture
def empty_db() -> Iterator[Database]:
    """A fresh database without tailhook's schema, dropped when the test ends."""
    name = f"tailhook_py_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield Database(name, f"{base}/{name}")
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A fresh database with tailhook's schema, installed the way a fixture would: `tailhook.schema.install`."""
    import tailhook.schema

    with empty_db.connect(autocommit=True) as conn:
        tailhook.schema.install(conn)
    return empty_db


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: List[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def requests(self) -> List[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver on 127.0.0.1, port 0, answering 204 and keeping every request."""
    holder: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            r: Receiver = holder["receiver"]
            with r.lock:
                r.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = r = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        server.shutdown()
        server.server_close()


def verify_standard_webhooks(secret: str, req: Received) -> None:
    """Checks `webhook-signature` as a Standard Webhooks receiver does."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{req.headers['webhook-id']}.{req.headers['webhook-timestamp']}.".encode() + req.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in req.headers["webhook-signature"].split() if s.startswith("v1,")]
    assert any(hmac.compare_digest(expected, s) for s in offered), "no valid v1 signature"


class Sidecar:
    def __init__(self, db: Database) -> None:
        if not BINARY.is_file():
            pytest.fail(f"no tailhook binary at {BINARY}: build it with `cargo build` or set PYTEST_TAILHOOK_BINARY")
        self.dir = tempfile.TemporaryDirectory()
        config = Path(self.dir.name) / "config.toml"
        config.write_text(
            f"""
[database]
url = "{db.url}"
startup_timeout_ms = 5000

[delivery]
allow_private_networks = true
backoff_initial_ms = 100
backoff_max_ms = 2000
timeout_ms = 2000
lease_margin_ms = 1000
shutdown_grace_ms = 2000

[server]
listen = ""
"""
        )
        env = binary_env()
        self.log = Path(self.dir.name) / "stderr.log"
        self.stderr = open(self.log, "wb")
        self.process = subprocess.Popen(
            [str(BINARY), "run", "--config", str(config)], env=env, cwd=self.dir.name, stdout=subprocess.DEVNULL, stderr=self.stderr
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()
        code = self.process.returncode
        self.dir.cleanup()
        return code


@pytest.fixture
def sidecar_for() -> Iterator[Callable[[Database], Sidecar]]:
    """Starts `tailhook run` (the built binary) against a database; stopped with SIGTERM when the test ends."""
    started: List[Sidecar] = []

    def start(db: Database) -> Sidecar:
        s = Sidecar(db)
        started.append(s)
        return s

    yield start
    for s in started:
        log = s.output()
        code = s.stop()
        assert code == 0, f"tailhook exited {code}:\n{log}"
