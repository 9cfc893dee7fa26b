from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from tests.conftest import running_app
from tests.support.trading import ADMIN, READER, add_accounts, write_key

OPS_KEY = "test-me-ops-only-key-0123456789"


class TestMe:
    async def test_says_what_each_key_is(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        write_key(tokens_dir, "ops", "ops", ["admin"], OPS_KEY)
        path = tokens_dir / "limited.json"
        path.write_text(
            '{"account": "slow", "scopes": ["read"], "key": "test-me-slow-key-0123456789",'
            ' "rate_limit": 2.5}'
        )
        settings = make_settings(orders={"max_batch_orders": 42})
        async with running_app(settings) as (_app, client):
            admin = (await client.get("/me", headers=ADMIN)).json()
            reader = (await client.get("/me", headers=READER)).json()
            ops = await client.get("/me", headers={"X-API-Key": OPS_KEY})
            slow = (
                await client.get("/me", headers={"X-API-Key": "test-me-slow-key-0123456789"})
            ).json()
        assert admin["account"] == "default"
        assert admin["scopes"] == ["admin", "read", "trade"]
        assert admin["limits"]["max_batch_orders"] == 42
        assert admin["rate_limit"] == {"requests_per_second": 1e6, "burst": 1_000_000}
        assert reader["account"] == "reader"
        assert reader["scopes"] == ["read"]
        assert len(reader["fingerprint"]) == 12
        assert ops.status_code == 200  # any valid key, whatever its scopes
        assert ops.json()["scopes"] == ["admin"]
        assert slow["rate_limit"] == {"requests_per_second": 2.5, "burst": 3}
        for body in (admin, reader, slow):
            assert not any("key-0123456789" in str(value) for value in body.values())

    async def test_needs_a_valid_key(self, make_settings: Callable[..., Settings]) -> None:
        async with running_app(make_settings()) as (_app, client):
            missing = await client.get("/me")
            unknown = await client.get("/me", headers={"X-API-Key": "nope-0123456789abcdef"})
        for response in (missing, unknown):
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "UNAUTHENTICATED"
