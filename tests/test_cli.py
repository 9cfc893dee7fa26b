from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.services.access.keys import (
    ALL_SCOPES,
    DEVELOPMENT_ACCOUNT,
    CreatedKey,
    create_key_file,
)
from tests.conftest import PG_ADMIN_URL


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def base_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    root = str(Path(__file__).resolve().parents[1])
    keep["PYTHONPATH"] = root + os.pathsep + keep.get("PYTHONPATH", "")
    keep["TOKENS_DIR"] = str(tmp_path / "tokens")
    keep["LOG_FORMAT"] = "text"
    return keep


class TestServeRefusal:
    def test_production_with_nothing_set_exits_naming_what_is_missing(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"ENVIRONMENT": "production"}
        result = run_cli("serve", env=env, cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "DATABASE_URL" in lines[0]
        assert "REDIS_URL" in lines[0]
        assert "API key" in lines[0]

    def test_a_bad_calendar_is_one_clear_line(self, tmp_path: Path) -> None:
        calendar = tmp_path / "calendar.toml"
        calendar.write_text('[calendars.x]\ntimezone = "Nowhere/Town"\n')
        env = base_env(tmp_path) | {"TRADING_CALENDAR": str(calendar)}
        result = run_cli("serve", env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"ticker-service: {calendar}: calendars.x: unknown time zone 'Nowhere/Town'"
        ]

    def test_invalid_value_is_one_clear_line(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"PORT": "not-a-port"}
        result = run_cli("serve", env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert "invalid configuration" in result.stderr
        assert "PORT" in result.stderr


class TestHelp:
    def test_every_command_has_an_example(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from app.cli import build_parser

        def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[Any]:
            found = [words]
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, child in action.choices.items():
                        found += commands(child, (*words, name))
            return found

        every = commands(build_parser())
        assert ("keys", "show-dev") in every
        assert len(every) >= 9  # the walk itself must not silently find nothing
        for words in every:
            with pytest.raises(SystemExit) as exited:
                run_main(*words, "--help", env={}, monkeypatch=monkeypatch, capsys=capsys)
            assert exited.value.code == 0
            out = capsys.readouterr().out
            example = out.partition("\nexample:\n")[2]
            assert f"ticker-service {' '.join(words)}".strip() in example, (words, out)


class TestMigrate:
    def test_migrates_sqlite(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data")}
        result = run_cli("migrate", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "database at revision" in result.stdout
        assert (tmp_path / "data" / "ticker.db").exists()

    def test_prints_its_result_without_alembic_log_lines(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json"}
        result = run_cli("migrate", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert re.fullmatch(r"database at revision \w+\n", result.stdout)

    def test_log_level_debug_still_shows_them(self, tmp_path: Path) -> None:
        env = base_env(tmp_path) | {"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "DEBUG"}
        result = run_cli("migrate", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "alembic.runtime.migration" in result.stderr

    def test_migrates_postgres(self, tmp_path: Path, pg_url: str) -> None:
        env = base_env(tmp_path) | {"DATABASE_URL": pg_url}
        result = run_cli("migrate", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert PG_ADMIN_URL  # the fixture's server


def run_main(
    *args: str,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """The CLI in-process (``main`` is the console-script entry point), for coverage."""
    from app.cli import main

    monkeypatch.delenv("API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


class TestKeys:
    def test_create_writes_a_0600_file_and_prints_the_key_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import json
        import stat

        from app.services.access.keys import digest

        env = {"TOKENS_DIR": str(tmp_path / "tokens")}
        code, out, err = run_main(
            "keys", "create", "--account", "desk-a", "--scopes", "read,trade",
            "--rate-limit", "25", env=env, monkeypatch=monkeypatch, capsys=capsys,
        )  # fmt: skip
        assert code == 0, err
        key = out.strip()
        assert key.startswith("tks_")
        assert key not in err
        [path] = (tmp_path / "tokens").glob("*.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert key not in path.read_text()
        assert json.loads(path.read_text()) == {
            "account": "desk-a",
            "scopes": ["read", "trade"],
            "key_sha256": digest(key),
            "rate_limit": 25.0,
        }
        assert digest(key)[:12] in err

        env["API_KEY"] = "env-key-0123456789"
        code, out, err = run_main("keys", "list", env=env, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        assert key not in out
        assert "env-key-0123456789" not in out
        lines = out.splitlines()
        assert lines[0].split() == ["ACCOUNT", "SCOPES", "RATE_LIMIT", "FINGERPRINT", "SOURCE"]
        assert lines[1].split()[0::4] == ["default", "API_KEY"]
        assert lines[2].split() == ["desk-a", "read,trade", "25", digest(key)[:12], path.name]

    def test_list_reports_skipped_files_and_fails(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "tokens").mkdir()
        (tmp_path / "tokens" / "bad.json").write_text("{")
        env = {"TOKENS_DIR": str(tmp_path / "tokens")}
        code, _out, err = run_main("keys", "list", env=env, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 1
        assert "skipped bad.json: not valid JSON" in err

    def test_create_refuses_bad_input(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        env = {"TOKENS_DIR": str(tmp_path / "tokens")}
        for scopes in ("read,root", ""):
            code, _out, err = run_main(
                "keys", "create", "--account", "a", "--scopes", scopes,
                env=env, monkeypatch=monkeypatch, capsys=capsys,
            )  # fmt: skip
            assert code == 2
            assert "scope" in err
        assert not (tmp_path / "tokens").exists()

    def test_create_reports_an_unwritable_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "file").write_text("")
        env = {"TOKENS_DIR": str(tmp_path / "file" / "tokens")}
        code, out, err = run_main(
            "keys", "create", "--account", "a", "--scopes", "read",
            env=env, monkeypatch=monkeypatch, capsys=capsys,
        )  # fmt: skip
        assert code == 1
        assert "cannot write" in err
        assert out == ""


def development_key_file(tokens: Path) -> CreatedKey:
    """The key file the service creates on its first start in development."""
    return create_key_file(
        tokens, account=DEVELOPMENT_ACCOUNT, scopes=ALL_SCOPES, name=DEVELOPMENT_ACCOUNT,
        keep_plain=True,
    )  # fmt: skip


class TestKeysShowDev:
    def test_prints_the_key_the_service_created(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        tokens = tmp_path / "tokens"
        created = development_key_file(tokens)
        env = {"TOKENS_DIR": str(tokens)}
        code, out, err = run_main(
            "keys", "show-dev", env=env, monkeypatch=monkeypatch, capsys=capsys
        )
        assert (code, out, err) == (0, created.key + "\n", "")

    def test_refuses_in_production(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        tokens = tmp_path / "tokens"
        created = development_key_file(tokens)
        env = {"TOKENS_DIR": str(tokens), "ENVIRONMENT": "production"}
        code, out, err = run_main(
            "keys", "show-dev", env=env, monkeypatch=monkeypatch, capsys=capsys
        )
        assert code == 2
        assert out == ""
        assert created.key not in err
        [line] = err.splitlines()
        assert "for development only" in line

    def test_says_what_to_do_without_a_printable_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from app.services.access.keys import ALL_SCOPES, DEVELOPMENT_ACCOUNT, create_key_file

        tokens = tmp_path / "tokens"
        env = {"TOKENS_DIR": str(tokens)}
        code, out, err = run_main(
            "keys", "show-dev", env=env, monkeypatch=monkeypatch, capsys=capsys
        )
        assert (code, out) == (1, "")
        assert "no development key in" in err
        assert "make run" in err
        # A file from before the key was kept: only its digest, which cannot be shown.
        create_key_file(
            tokens, account=DEVELOPMENT_ACCOUNT, scopes=ALL_SCOPES, name=DEVELOPMENT_ACCOUNT
        )
        code, out, err = run_main(
            "keys", "show-dev", env=env, monkeypatch=monkeypatch, capsys=capsys
        )
        assert (code, out) == (1, "")
        assert "holds only the key's SHA-256" in err
        assert "delete the file and restart" in err
