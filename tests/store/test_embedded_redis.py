"""The embedded Redis belongs to the process that started it: a second process never takes
its socket, a server orphaned by ``kill -9`` is stopped by the next start, and a clean stop
logs nothing alarming."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app.store.embedded_redis import EmbeddedRedis, EmbeddedRedisBusy

STARTER = """
import sys, time
from pathlib import Path
from app.store.embedded_redis import EmbeddedRedis
server = EmbeddedRedis.start(Path(sys.argv[1]))
print(server.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ping(socket_file: str) -> bool:
    client = redis.Redis(unix_socket_path=socket_file, socket_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


class TestOwnership:
    def test_a_second_start_is_refused_and_leaves_the_owners_socket(self, tmp_path: Path) -> None:
        owner = EmbeddedRedis.start(tmp_path)
        try:
            inode = os.stat(owner.socket_file).st_ino
            with pytest.raises(EmbeddedRedisBusy, match="another running ticker-service"):
                EmbeddedRedis.start(tmp_path)
            assert os.stat(owner.socket_file).st_ino == inode
            assert ping(owner.socket_file)
        finally:
            owner.stop()

    def test_an_orphan_left_by_kill_9_is_stopped_by_the_next_start(self, tmp_path: Path) -> None:
        root = str(Path(__file__).resolve().parents[2])
        starter = subprocess.Popen(
            [sys.executable, "-c", STARTER, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": root},
        )
        assert starter.stdout is not None
        orphan = int(starter.stdout.readline())
        starter.kill()  # SIGKILL: the daemonized redis-server lives on
        starter.wait(10)
        assert alive(orphan)
        assert json.loads((tmp_path / "redis.pid").read_text())["pid"] == orphan

        server = EmbeddedRedis.start(tmp_path)
        try:
            assert not alive(orphan)
            assert server.pid != orphan
            assert json.loads((tmp_path / "redis.pid").read_text())["pid"] == server.pid
            assert ping(server.socket_file)
        finally:
            server.stop()
            if alive(orphan):  # the assertion failed: leave no server behind
                os.kill(orphan, signal.SIGKILL)

    def test_a_clean_stop_ends_the_server_and_logs_nothing_alarming(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        server = EmbeddedRedis.start(tmp_path)
        pid = server.pid
        with caplog.at_level(logging.DEBUG):
            server.stop()
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert not (tmp_path / "redis.pid").exists()
        alarming = [r for r in caplog.records if r.levelno >= logging.INFO and "fail" in r.message]
        assert alarming == []
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
