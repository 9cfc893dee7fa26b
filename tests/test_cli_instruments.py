"""``ticker-service instruments import`` end to end, in a subprocess like an operator runs it."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import psycopg

from app.services.instruments.importer import BUNDLED_INSTRUMENTS_CSV
from tests.support.instruments import csv_row, csv_text
from tests.test_cli import base_env, run_cli


def statuses(pg_url: str) -> dict[int, str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT instrument_token, status FROM instruments").fetchall()
    return dict(rows)


def big_csv(path: Path, rows: int) -> Path:
    path.write_text(csv_text(*(csv_row(token, f"S{token}") for token in range(1, rows + 1))))
    return path


def run_in_terminal(*args: str, env: dict[str, str], cwd: Path) -> str:
    """The CLI with its stdout on a pseudo-terminal, as an operator sees it; what it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env | {"COLUMNS": "100", "TERM": "xterm"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    return b"".join(chunks).decode()


class TestInstrumentsImport:
    def test_imports_then_updates_on_postgres(self, tmp_path: Path, pg_url: str) -> None:
        env = base_env(tmp_path) | {"DATABASE_URL": pg_url, "LOG_FORMAT": "json"}
        first = run_cli(
            "instruments", "import", str(BUNDLED_INSTRUMENTS_CSV), env=env, cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr
        assert "45 inserted, 0 updated, 0 rejected" in first.stdout
        # Its own lines only: no Alembic or importer log records between them.
        assert first.stderr == ""
        assert [line.split(":")[0] for line in first.stdout.splitlines()] == [
            f"imported {BUNDLED_INSTRUMENTS_CSV}",
            "a running service loads it at its next refresh (or POST /admin/instrument-refresh)",
        ]
        again = run_cli(
            "instruments", "import", str(BUNDLED_INSTRUMENTS_CSV), env=env, cwd=tmp_path
        )
        assert again.returncode == 0, again.stderr
        assert "0 inserted, 45 updated" in again.stdout
        assert len(statuses(pg_url)) == 45

    def test_bad_rows_are_named_and_exit_non_zero(self, tmp_path: Path, pg_url: str) -> None:
        path = tmp_path / "some-bad.csv"
        path.write_text(
            csv_text(csv_row(1, "A"), csv_row(2, "B", tick="0.0.5"), csv_row(3, "C", lot="0"))
        )
        env = base_env(tmp_path) | {"DATABASE_URL": pg_url}
        result = run_cli("instruments", "import", str(path), env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert "1 inserted, 0 updated, 2 rejected" in result.stdout
        assert "line 3: skipped: tick_size '0.0.5'" in result.stderr
        assert "line 4: skipped: lot_size must be greater than zero" in result.stderr
        assert statuses(pg_url) == {1: "active"}

    def test_delist_missing_on_sqlite(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data")}
        full = tmp_path / "full.csv"
        full.write_text(csv_text(csv_row(1, "A"), csv_row(2, "B")))
        partial = tmp_path / "partial.csv"
        partial.write_text(csv_text(csv_row(1, "A")))
        assert run_cli("instruments", "import", str(full), env=env, cwd=tmp_path).returncode == 0
        result = run_cli(
            "instruments", "import", str(partial), "--delist-missing", env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert "1 delisted" in result.stdout

    def test_unusable_file_exits_2(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data")}
        missing = run_cli("instruments", "import", "nope.csv", env=env, cwd=tmp_path)
        assert missing.returncode == 2
        assert "cannot read" in missing.stderr
        header = tmp_path / "header.csv"
        header.write_text("token,symbol\n1,A\n")
        wrong = run_cli("instruments", "import", str(header), env=env, cwd=tmp_path)
        assert wrong.returncode == 2
        assert "missing column(s)" in wrong.stderr


class TestImportProgress:
    def test_a_terminal_gets_a_bar_with_rows_rate_and_a_summary(self, tmp_path: Path) -> None:
        path = big_csv(tmp_path / "many.csv", 20_000)
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data")}
        shown = run_in_terminal("instruments", "import", str(path), env=env, cwd=tmp_path)
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).replace("\r", "\n")
        assert "\x1b[" in shown  # drawn in place, not printed line by line
        assert re.search(r"checking many\.csv .* 20,000/20,000 +[\d,]+ rows/s", plain), plain
        assert "writing many.csv" in plain
        assert re.search(r"imported .*many\.csv: 20000 rows, 20000 inserted.* rows/s\)", plain)

    def test_a_pipe_gets_plain_lines(self, tmp_path: Path) -> None:
        path = big_csv(tmp_path / "many.csv", 20_000)
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data")}
        result = run_cli("instruments", "import", str(path), env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout
        assert "\r" not in result.stdout
        assert re.search(
            r"^imported .*: 20000 rows, 20000 inserted, .* in [\d.]+ s \([\d,]+ rows/s\)$",
            result.stdout,
            re.MULTILINE,
        )
