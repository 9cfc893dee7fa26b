"""``ticker-service serve`` started a second time: on a busy port, or on the data folder of a
running instance, it exits with one line before touching anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.store.embedded_redis import EmbeddedRedis
from tests.support.servers import ServiceProcess, free_port
from tests.test_cli import base_env, run_cli


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder`` with its inode, size and modification time; but SQLite's
    ``-wal``/``-shm``, which the running instance itself may change at any time."""
    return {
        str(path.relative_to(folder)): (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if (stat := path.lstat()) and not path.is_dir() and not path.name.endswith(("-wal", "-shm"))
    }


@pytest.fixture
def first(tmp_path: Path) -> Iterator[ServiceProcess]:
    """``make run`` as a new user runs it: SQLite and the embedded Redis under ./data."""
    env = {k: v for k, v in base_env(tmp_path).items() if k != "PYTHONPATH"}
    service = ServiceProcess(env | {"INSTANCE_ID": "first"}, tmp_path)
    service.start()
    try:
        yield service
    finally:
        if service.process is not None:
            service.terminate()  # not kill(): its embedded redis-server would outlive it


class TestSecondServe:
    def test_a_busy_port_stops_it_before_anything_starts(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data"), "PORT": str(port)}
            result = run_cli("serve", env=env, cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
        assert not (tmp_path / "data").exists()  # no migrations, no embedded Redis
        assert not (tmp_path / "tokens").exists()  # no development key either
        assert result.stdout == ""

    def test_the_data_folder_of_a_running_instance_is_refused_naming_it(
        self, tmp_path: Path, first: ServiceProcess
    ) -> None:
        data = tmp_path / "data"
        before = snapshot(data)
        env = base_env(tmp_path) | {"PORT": str(free_port())}
        result = run_cli("serve", env=env, cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("ticker-service: another ticker-service (first, pid ")
        assert f"holds {data / 'ticker.db'}" in lines[0]
        assert snapshot(data) == before
        assert httpx.get(first.url + "/health/ready").status_code == 200

    def test_an_embedded_redis_owned_by_another_process_is_refused(
        self, tmp_path: Path, pg_url: str
    ) -> None:
        data = tmp_path / "data"
        owner = EmbeddedRedis.start(data)
        try:
            before = snapshot(data)
            env = base_env(tmp_path) | {"DATABASE_URL": pg_url, "PORT": str(free_port())}
            result = run_cli("serve", env=env, cwd=tmp_path)
            assert result.returncode == 1
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert f"the embedded Redis in {data} belongs to another" in lines[0]
            assert snapshot(data) == before
        finally:
            owner.stop()
