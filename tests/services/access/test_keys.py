from __future__ import annotations

import json
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from app.services.access.keys import (
    ALL_SCOPES,
    KEY_PREFIX,
    KeyFileError,
    Scope,
    create_key_file,
    digest,
    load_directory,
    parse_key_file,
    parse_scopes,
    snapshot,
)

PLAIN = "desk-a-key-0123456789abcdef"


class TestParseKeyFile:
    def test_plain_key(self) -> None:
        loaded = parse_key_file(
            json.dumps({"account": "desk-a", "scopes": ["read", "trade"], "key": PLAIN}),
            source="a.json",
        )
        assert loaded.plain == PLAIN
        assert loaded.key.key_sha256 == digest(PLAIN)
        assert loaded.key.scopes == {Scope.READ, Scope.TRADE}
        assert loaded.key.rate_limit is None

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            ("[1, 2]", "expected a JSON object"),
            ("{", "not valid JSON"),
            ({"scopes": ["read"], "key": PLAIN}, "account must be"),
            ({"account": "has space", "scopes": ["read"], "key": PLAIN}, "account must be"),
            ({"account": "a", "key": PLAIN}, "scopes must be"),
            ({"account": "a", "scopes": [], "key": PLAIN}, "scopes must be"),
            ({"account": "a", "scopes": ["read", "root"], "key": PLAIN}, "unknown scope(s) root"),
            ({"account": "a", "scopes": ["read"]}, "exactly one of key or key_sha256"),
            (
                {"account": "a", "scopes": ["read"], "key": PLAIN, "key_sha256": digest(PLAIN)},
                "exactly one of key or key_sha256",
            ),
            ({"account": "a", "scopes": ["read"], "key": "short"}, "at least 16"),
            ({"account": "a", "scopes": ["read"], "key_sha256": "abc"}, "64 hex digits"),
            ({"account": "a", "scopes": ["read"], "key_sha256": 5}, "64 hex digits"),
            ({"account": "a", "scopes": ["read"], "key": PLAIN, "rate_limit": 0}, "rate_limit"),
            ({"account": "a", "scopes": ["read"], "key": PLAIN, "rate_limit": "9"}, "rate_limit"),
            ({"account": "a", "scopes": ["read"], "key": PLAIN, "rate_limit": True}, "rate_limit"),
            ({"account": "a", "scopes": ["read"], "key": PLAIN, "burst": 2.5}, "whole number"),
            ({"account": "a", "scopes": ["read"], "key": PLAIN, "max_position": 0}, "max_position"),
            (
                {"account": "a", "scopes": ["read"], "key": PLAIN, "max_position": "9"},
                "max_position",
            ),
        ],
    )
    def test_rejects_with_a_reason_that_never_quotes_the_key(
        self, body: object, problem: str
    ) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        with pytest.raises(KeyFileError) as caught:
            parse_key_file(text, source="x.json")
        assert problem in str(caught.value)
        assert PLAIN not in str(caught.value)

    def test_max_position_is_exact(self) -> None:
        body = {"account": "a", "scopes": ["trade"], "key": PLAIN, "max_position": 0.1}
        loaded = parse_key_file(json.dumps(body), source="a.json")
        assert loaded.key.max_position == Decimal("0.1")

    def test_scopes_from_a_comma_list(self) -> None:
        assert parse_scopes("read, trade") == {Scope.READ, Scope.TRADE}
        with pytest.raises(KeyFileError):
            parse_scopes("")


class TestCreateKeyFile:
    def test_writes_only_the_digest_with_mode_0600(self, tmp_path: Path) -> None:
        directory = tmp_path / "new" / "tokens"
        created = create_key_file(
            directory, account="desk-a", scopes=frozenset({Scope.READ}), rate_limit=20
        )
        assert created.key.startswith(KEY_PREFIX)
        assert len(created.key) > 40
        assert stat.S_IMODE(created.path.stat().st_mode) == 0o600
        text = created.path.read_text()
        assert created.key not in text
        assert json.loads(text) == {
            "account": "desk-a",
            "scopes": ["read"],
            "key_sha256": digest(created.key),
            "rate_limit": 20,
        }
        assert created.path.name == f"desk-a-{created.api_key.fingerprint[:8]}.json"
        assert [p.name for p in directory.iterdir()] == [created.path.name]  # no temp file left
        [loaded] = load_directory(directory).keys
        assert loaded.key.key_sha256 == digest(created.key)

    def test_refuses_to_overwrite_and_bad_input(self, tmp_path: Path) -> None:
        create_key_file(tmp_path, account="dev", scopes=ALL_SCOPES, name="dev")
        with pytest.raises(KeyFileError, match="already exists"):
            create_key_file(tmp_path, account="dev", scopes=ALL_SCOPES, name="dev")
        with pytest.raises(KeyFileError, match="account"):
            create_key_file(tmp_path, account="../etc", scopes=ALL_SCOPES)
        with pytest.raises(KeyFileError, match="rate limit"):
            create_key_file(tmp_path, account="a", scopes=ALL_SCOPES, rate_limit=-1)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json"]


class TestSnapshot:
    def test_changes_with_content_and_membership(self, tmp_path: Path) -> None:
        assert snapshot(tmp_path / "missing") == frozenset()
        path = tmp_path / "a.json"
        path.write_text("{}")
        first = snapshot(tmp_path)
        path.write_text('{"account": "longer"}')
        second = snapshot(tmp_path)
        assert first != second
        path.unlink()
        assert snapshot(tmp_path) == frozenset()
