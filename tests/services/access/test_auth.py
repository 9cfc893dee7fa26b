from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from app import logs
from app.errors import Forbidden, RateLimited, Unauthenticated
from app.metrics import Metrics
from app.services.access.auth import ALL_SCOPES, AuthService, Scope, digest, fingerprint

PLAIN = "desk-a-key-0123456789abcdef"
ADMIN = "env-admin-key-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(directory: Path, name: str, body: object) -> Path:
    path = directory / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def failures(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("ticker_auth_failures_total", {"reason": reason})
    return value or 0.0


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


class TestAuthenticate:
    def test_api_key_is_account_default_with_every_scope(self) -> None:
        auth = AuthService(api_key=ADMIN)
        key = auth.authenticate(ADMIN)
        assert key.account == "default"
        assert key.scopes == ALL_SCOPES
        assert key.key_sha256 == digest(ADMIN)
        assert key.source == "API_KEY"

    def test_missing_and_unknown_keys_are_refused_and_counted(self) -> None:
        metrics = Metrics()
        auth = AuthService(api_key=ADMIN, metrics=metrics)
        with pytest.raises(Unauthenticated):
            auth.authenticate(None)
        with pytest.raises(Unauthenticated):
            auth.authenticate("")
        with pytest.raises(Unauthenticated) as caught:
            auth.authenticate("not-a-key-at-all-000")
        assert fingerprint(digest("not-a-key-at-all-000")) in caught.value.message
        assert "not-a-key-at-all-000" not in caught.value.message
        assert failures(metrics, "missing_key") == 2
        assert failures(metrics, "unknown_key") == 1

    def test_missing_scope_is_forbidden_and_counted(self, tokens_dir: Path) -> None:
        metrics = Metrics()
        write(tokens_dir, "reader.json", {"account": "r", "scopes": ["read"], "key": PLAIN})
        auth = AuthService(api_key=None, tokens_dir=tokens_dir, metrics=metrics)
        key = auth.authenticate(PLAIN)
        assert auth.authorise(key, Scope.READ) is key
        with pytest.raises(Forbidden, match="'trade'"):
            auth.authorise(key, Scope.TRADE)
        assert failures(metrics, "missing_scope") == 1

    def test_no_sources_means_no_keys(self) -> None:
        auth = AuthService(api_key=None)
        assert auth.keys == []
        assert auth.reload() is False
        with pytest.raises(Unauthenticated):
            auth.authenticate(ADMIN)


class TestKeyFiles:
    def test_plain_and_digest_files_merge_with_api_key(self, tokens_dir: Path) -> None:
        write(tokens_dir, "a.json", {"account": "desk-a", "scopes": ["read"], "key": PLAIN})
        other = "desk-b-key-abcdefabcdef0123"
        write(
            tokens_dir,
            "b.json",
            {
                "account": "desk-b",
                "scopes": ["read", "trade"],
                "key_sha256": digest(other).upper(),  # any case is accepted
                "rate_limit": 7,
                "burst": 3,
            },
        )
        metrics = Metrics()
        auth = AuthService(api_key=ADMIN, tokens_dir=tokens_dir, metrics=metrics)
        assert {k.account for k in auth.keys} == {"default", "desk-a", "desk-b"}
        desk_b = auth.authenticate(other)
        assert desk_b.scopes == {Scope.READ, Scope.TRADE}
        assert (desk_b.rate_limit, desk_b.burst, desk_b.source) == (7.0, 3, "b.json")
        assert auth.authenticate(PLAIN).account == "desk-a"
        assert gauge(metrics, "ticker_api_keys") == 3
        assert PLAIN in logs._secrets  # a plain key learnt from a file is redacted from logs

    def test_malformed_file_is_logged_by_name_and_skipped(
        self, tokens_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        write(tokens_dir, "good.json", {"account": "ok", "scopes": ["read"], "key": PLAIN})
        secret = "half-written-secret-0123456789"
        write(tokens_dir, "broken.json", '{"account": "x", "key": "' + secret)
        (tokens_dir / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
        metrics = Metrics()
        with caplog.at_level(logging.WARNING):
            auth = AuthService(api_key=None, tokens_dir=tokens_dir, metrics=metrics)
        assert auth.authenticate(PLAIN).account == "ok"
        messages = [r.getMessage() for r in caplog.records]
        assert any("broken.json" in m and "not valid JSON" in m for m in messages)
        assert any("binary.json" in m and "unreadable" in m for m in messages)
        assert all(secret not in m for m in messages)
        assert gauge(metrics, "ticker_api_key_file_errors") == 2

    def test_ignores_dotfiles_other_extensions_and_folders(self, tokens_dir: Path) -> None:
        body = {"account": "x", "scopes": ["read"], "key": PLAIN}
        write(tokens_dir, ".hidden.json", body)
        write(tokens_dir, "README.md", "# not a key")
        write(tokens_dir, "key.json.bak", body)
        (tokens_dir / "folder.json").mkdir()
        (tokens_dir / "dangling.json").symlink_to(tokens_dir / "nowhere.json")
        auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        assert auth.keys == []

    def test_duplicate_key_keeps_the_first_file(
        self, tokens_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        write(tokens_dir, "a.json", {"account": "first", "scopes": ["read"], "key": PLAIN})
        write(
            tokens_dir,
            "b.json",
            {"account": "second", "scopes": ["admin"], "key_sha256": digest(PLAIN)},
        )
        with caplog.at_level(logging.WARNING):
            auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        assert auth.authenticate(PLAIN).account == "first"
        assert any(
            "b.json" in r.getMessage() and "a.json" in r.getMessage() for r in caplog.records
        )

    def test_reload_sees_add_rotate_and_remove(self, tokens_dir: Path) -> None:
        auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        assert auth.reload() is False
        path = write(tokens_dir, "k.json", {"account": "a", "scopes": ["read"], "key": PLAIN})
        assert auth.reload() is True
        assert auth.authenticate(PLAIN).account == "a"
        rotated = "rotated-key-0123456789abcdef"
        write(tokens_dir, "k.json", {"account": "a", "scopes": ["read"], "key": rotated})
        assert auth.reload() is True
        assert auth.authenticate(rotated).account == "a"
        with pytest.raises(Unauthenticated):
            auth.authenticate(PLAIN)
        path.unlink()
        assert auth.reload() is True
        with pytest.raises(Unauthenticated):
            auth.authenticate(rotated)

    def test_reload_sees_a_changed_scope_on_the_same_key(
        self, tokens_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        write(tokens_dir, "k.json", {"account": "a", "scopes": ["read"], "key": PLAIN})
        auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        write(tokens_dir, "k.json", {"account": "a", "scopes": ["read", "trade"], "key": PLAIN})
        with caplog.at_level(logging.INFO):
            assert auth.reload() is True
        assert auth.authenticate(PLAIN).scopes == {Scope.READ, Scope.TRADE}
        assert any("API key changed" in r.getMessage() for r in caplog.records)
        assert all(PLAIN not in r.getMessage() for r in caplog.records)

    def test_follows_kubernetes_secret_symlinks_and_sees_the_swap(self, tokens_dir: Path) -> None:
        # The kubelet's layout: name -> ..data/name, ..data -> ..<timestamp>/ swapped atomically.
        first = tokens_dir / "..2026_11_22_01"
        first.mkdir()
        write(first, "desk.json", {"account": "desk", "scopes": ["read"], "key": PLAIN})
        (tokens_dir / "..data").symlink_to(first.name)
        (tokens_dir / "desk.json").symlink_to("..data/desk.json")
        auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        assert [k.account for k in auth.keys] == ["desk"]

        rotated = "rotated-key-0123456789abcdef"
        second = tokens_dir / "..2026_11_22_02"
        second.mkdir()
        write(second, "desk.json", {"account": "desk", "scopes": ["read"], "key": rotated})
        (tokens_dir / "..data_tmp").symlink_to(second.name)
        os.replace(tokens_dir / "..data_tmp", tokens_dir / "..data")
        assert auth.reload() is True
        assert auth.authenticate(rotated).account == "desk"
        with pytest.raises(Unauthenticated):
            auth.authenticate(PLAIN)

    async def test_watch_picks_up_changes_in_the_background(self, tokens_dir: Path) -> None:
        auth = AuthService(api_key=None, tokens_dir=tokens_dir)
        task = asyncio.create_task(auth.watch(0.02))
        try:
            write(tokens_dir, "k.json", {"account": "a", "scopes": ["read"], "key": PLAIN})
            for _ in range(200):
                if auth.keys:
                    break
                await asyncio.sleep(0.02)
            assert auth.authenticate(PLAIN).account == "a"
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def test_watch_without_a_folder_returns(self) -> None:
        await asyncio.wait_for(AuthService(api_key=ADMIN).watch(0.01), timeout=1)


class TestAdmit:
    def make(self, tokens_dir: Path, clock: Clock, metrics: Metrics) -> AuthService:
        write(
            tokens_dir,
            "slow.json",
            {"account": "slow", "scopes": ["read"], "key": PLAIN, "rate_limit": 1},
        )
        return AuthService(
            api_key=ADMIN,
            tokens_dir=tokens_dir,
            rate_limit=10,
            rate_limit_burst=3,
            unauthenticated_rate_limit=2,
            metrics=metrics,
            clock=clock,
        )

    def test_key_bucket_allows_the_burst_then_429_until_refilled(self, tokens_dir: Path) -> None:
        clock, metrics = Clock(), Metrics()
        auth = self.make(tokens_dir, clock, metrics)
        seen = [auth.admit(ADMIN, address="10.0.0.1").headers["RateLimit"] for _ in range(3)]
        assert seen == ['"default";r=2;t=1', '"default";r=1;t=1', '"default";r=0;t=1']
        with pytest.raises(RateLimited) as caught:
            auth.admit(ADMIN, address="10.0.0.1")
        assert caught.value.headers["Retry-After"] == "1"
        assert caught.value.headers["RateLimit-Policy"] == '"default";q=3;w=1'
        assert failures(metrics, "rate_limited") == 1
        clock.now += 0.1
        assert auth.admit(ADMIN, address="10.0.0.1").headers["RateLimit"] == '"default";r=0;t=1'

    def test_per_key_rate_limit_overrides_the_default(self, tokens_dir: Path) -> None:
        clock, metrics = Clock(), Metrics()
        auth = self.make(tokens_dir, clock, metrics)
        admitted = auth.admit(PLAIN, address="10.0.0.1")
        assert admitted.key.account == "slow"
        assert admitted.headers["RateLimit-Policy"] == '"key";q=1;w=1'
        with pytest.raises(RateLimited) as caught:
            auth.admit(PLAIN, address="10.0.0.1")
        assert caught.value.headers["Retry-After"] == "1"
        auth.admit(ADMIN, address="10.0.0.1")  # other keys have their own buckets

    def test_failed_attempts_per_address_block_even_a_valid_key(self, tokens_dir: Path) -> None:
        clock, metrics = Clock(), Metrics()
        auth = self.make(tokens_dir, clock, metrics)
        for presented in (None, "guess-0000000000000000"):
            with pytest.raises(Unauthenticated):
                auth.admit(presented, address="10.0.0.9")
        with pytest.raises(RateLimited) as caught:
            auth.admit(ADMIN, address="10.0.0.9")  # refused before the key is looked at
        assert caught.value.headers == {"Retry-After": "1"}
        assert failures(metrics, "address_rate_limited") == 1
        auth.admit(ADMIN, address="10.0.0.10")  # other addresses are unaffected
        clock.now += 0.5
        assert auth.admit(ADMIN, address="10.0.0.9").key.account == "default"

    def test_valid_requests_do_not_use_the_address_budget(self, tokens_dir: Path) -> None:
        clock, metrics = Clock(), Metrics()
        auth = self.make(tokens_dir, clock, metrics)
        for _ in range(3):
            auth.admit(ADMIN, address="10.0.0.1")
            clock.now += 0.1
        with pytest.raises(Unauthenticated):
            auth.admit("bad-key-0000000000000000", address="10.0.0.1")

    def test_revoked_key_loses_its_bucket(self, tokens_dir: Path) -> None:
        clock, metrics = Clock(), Metrics()
        auth = self.make(tokens_dir, clock, metrics)
        auth.admit(PLAIN, address="a")
        (tokens_dir / "slow.json").unlink()
        auth.reload()
        assert len(auth._key_buckets) == 0
