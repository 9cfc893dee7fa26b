"""Secrets hygiene: the checker that fails the run when a secret reaches a log, and a busy
service whose logs must hold none of the keys and webhook secrets it was given or issued.

The run-wide check itself is the ``secrets_never_logged`` fixture in ``tests/conftest.py``:
every record of the session (before any redaction) and every subprocess service log is
scanned at the end for every secret in ``tests.support.secrets.known_secrets()``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app import logs
from app.services.access.auth import digest, fingerprint
from app.services.webhooks.signing import new_secret
from app.settings import Settings
from app.store.database import Database
from tests.conftest import running_app
from tests.services.webhooks.receiver import Receiver
from tests.support import secrets
from tests.support.trading import ADMIN, add_accounts, write_key


@pytest.fixture
def capture(tmp_path: Path) -> tuple[logging.Logger, secrets.LogCapture]:
    logger = logging.getLogger(f"tests.leaky.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = secrets.LogCapture(tmp_path / "log.txt")
    logger.addHandler(handler)
    return logger, handler


class TestChecker:
    def test_a_secret_anywhere_in_a_record_is_found(
        self, capture: tuple[logging.Logger, secrets.LogCapture]
    ) -> None:
        logger, handler = capture
        in_message, in_extra, in_traceback = (f"leak-{n}-{uuid.uuid4().hex}" for n in range(3))
        never_logged = f"never-{uuid.uuid4().hex}"
        logger.info("sending with %s", in_message)
        logger.warning("request failed", extra={"headers": {"x-api-key": in_extra}})
        try:
            raise ValueError(f"bad key {in_traceback}")
        except ValueError:
            logger.exception("boom")
        handler.flush()
        found = secrets.leaks([handler.path], [in_message, in_extra, in_traceback, never_logged])
        assert list(found) == [handler.path]
        assert sorted(found[handler.path]) == sorted(
            f"{s[:6]}… ({len(s)} chars)" for s in (in_message, in_extra, in_traceback)
        )
        assert not any(s in str(found) for s in (in_message, in_extra, in_traceback))

    def test_fingerprints_and_redacted_lines_are_clean(
        self, capture: tuple[logging.Logger, secrets.LogCapture]
    ) -> None:
        logger, handler = capture
        key = f"tks_{uuid.uuid4().hex}"
        logger.info("API key added: fingerprint %s", fingerprint(digest(key)))
        logger.info("digest %s", digest(key))
        handler.flush()
        assert secrets.leaks([handler.path], [key]) == {}

    def test_webhook_secrets_in_responses_are_remembered(self) -> None:
        secret = f"whsec_{uuid.uuid4().hex}"
        secrets.remember_in({"items": [{"id": "we_1", "secret": secret}], "next_cursor": None})
        assert secret in secrets.known_secrets()
        secrets.remember_in({"secret": None, "description": "secret"})

    def test_known_secrets_include_the_apps_and_keep_the_shortest(self) -> None:
        issued = new_secret()  # registers the secret and its bare base64 part with app.logs
        known = secrets.known_secrets()
        assert issued.removeprefix("whsec_") in known
        assert issued not in known  # contains the bare part: looking for that is enough
        short = secrets.remember("short")
        assert short not in secrets.known_secrets()

    def test_the_session_capture_sees_the_apps_records(self, secrets_never_logged: Path) -> None:
        marker = f"marker-{uuid.uuid4().hex}"
        logging.getLogger("app.services.orders.service").info("%s", marker)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, secrets.LogCapture):
                handler.flush()
        assert marker in secrets_never_logged.read_text()


class TestDatabaseErrors:
    async def test_failed_statements_do_not_carry_their_values(
        self, pg_url: str, tmp_path: Path
    ) -> None:
        for url in (pg_url, None):  # PostgreSQL, then SQLite
            database = Database.create(url, data_dir=tmp_path)
            secret = secrets.remember(f"whsec_{uuid.uuid4().hex}")
            statement = text("INSERT INTO no_such_table VALUES (:v)")
            try:
                async with database.engine.begin() as conn:
                    with pytest.raises(DBAPIError) as failed:
                        await conn.execute(statement, {"v": secret})
            finally:
                await database.dispose()
            assert secret not in str(failed.value)
            assert "hidden" in str(failed.value)


class TestBusyService:
    async def test_no_key_or_webhook_secret_reaches_a_log(
        self,
        make_settings: Callable[..., Settings],
        pg_url: str,
        tokens_dir: Path,
        secrets_never_logged: Path,
    ) -> None:
        add_accounts(tokens_dir)
        desk_key = f"tks_desk_{uuid.uuid4().hex}"
        write_key(tokens_dir, "desk", "desk", ["read", "trade"], desk_key)
        settings = make_settings(
            db={"url": pg_url}, webhooks={"allow_loopback": True}, auth={"tokens_poll_seconds": 0.1}
        )
        created: list[str] = []
        with Receiver() as receiver:
            async with running_app(settings) as (_app, client):
                desk = {"X-API-Key": desk_key}
                hook = await client.post(
                    "/advanced/webhooks", json={"url": receiver.url()}, headers=desk
                )
                created.append(hook.json()["secret"])
                rotated = await client.patch(
                    f"/advanced/webhooks/{hook.json()['id']}",
                    json={"rotate_secret": True},
                    headers=desk,
                )
                created.append(rotated.json()["secret"])
                await client.post(f"/advanced/webhooks/{hook.json()['id']}/test", headers=desk)
                for near_miss in (desk_key + "x", desk_key[:-1], desk_key.upper(), created[0]):
                    response = await client.get("/orders", headers={"X-API-Key": near_miss})
                    assert response.status_code == 401
                    assert near_miss not in response.text
                response = await client.post(
                    "/advanced/batch-orders",
                    json={"orders": [{"symbol": "NSE:INFY", "side": "buy", "quantity": "1",
                                      "price": "1700", "client_order_id": "x" * 80}]},
                    headers=ADMIN,
                )  # fmt: skip
                assert response.status_code == 200
                # a key file rewritten while running: the reload is logged by fingerprint
                write_key(tokens_dir, "desk", "desk", ["read"], desk_key)
                (tokens_dir / "broken.json").write_text('{"account": "x", "key": "' + desk_key)
                await asyncio.sleep(0.5)  # a few polls of the key-file watcher
        for handler in logging.getLogger().handlers:
            handler.flush()
        assert secrets.leaks([secrets_never_logged], [desk_key, *created]) == {}
        # ... and the run-wide check will look for them too (the secrets came from responses)
        known = secrets.known_secrets()
        assert desk_key in known
        assert all(s.removeprefix("whsec_") in known for s in created)
        assert desk_key in logs._secrets  # registered by the app for its redaction filter
