"""What the benchmarks that run the service as a subprocess share: the keys, fresh databases,
starting ``ticker-service serve`` with bench settings, waiting for it, stopping it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEYS = {"default": "bench-key-default-0123456789", "desk-b": "bench-key-desk-b-0123456789"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(name: str) -> str:
    """(Re)create the PostgreSQL database ``name``, empty; its URL."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_databases(*names: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def asgi_scope(
    method: str,
    path: str,
    key: str,
    *,
    body_length: int | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An HTTP request's ASGI scope as uvicorn builds it, for benches that call the app
    in-process: JSON, ``key`` in ``X-API-Key``, a ``Content-Length`` when there is a body."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"x-api-key", key.encode()),
        (b"content-type", b"application/json"),
    ]
    if body_length is not None:
        headers.append((b"content-length", str(body_length).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    if state is not None:
        scope["state"] = state
    return scope


def service_env(workdir: Path, redis_prefix: str) -> dict[str, str]:
    """The service's settings for a bench: both bench keys (``desk-b``'s in a key file under
    ``workdir/tokens``), Redis under ``redis_prefix``, limits out of the way."""
    tokens = workdir / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    (tokens / "desk-b.json").write_text(
        json.dumps({"account": "desk-b", "scopes": ["read", "trade"], "key": KEYS["desk-b"]})
    )
    return {
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "API_KEY": KEYS["default"],
        "TOKENS_DIR": str(tokens),
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG": "false",
        "RATE_LIMIT_PER_SECOND": "1000000000",
        "CIRCUIT_BREAKER_PERCENT": "0",
        "RISK_MAX_OPEN_ORDERS": "1000000000",
    }


def serve(
    workdir: Path, port: int, *, name: str = "service", **env: str
) -> subprocess.Popen[bytes]:
    """``ticker-service serve`` on ``port`` with both bench keys, limits out of the way and
    ``env`` on top (``DATABASE_URL`` at least); its log is ``workdir/{name}.log``."""
    full = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(ROOT),
        **service_env(workdir, f"bench:{port}:"),
        **env,
    }
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=full,
        cwd=workdir,
        stdout=log,
        stderr=log,
    )


def serve_app(workdir: Path, port: int, app: str, *, name: str) -> subprocess.Popen[bytes]:
    """``app`` (``module:attribute``) under uvicorn with the service's settings: one worker,
    httptools, uvloop, no access log; its log is ``workdir/{name}.log``."""
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers", "1",
         "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """utime + stime of a local process, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
