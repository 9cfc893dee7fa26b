"""Standard Webhooks signatures, checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import logging
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.logs import ContextFilter
from app.services.webhooks.signing import new_secret, secret_key, signature, signed_headers

BODY = b'{"type":"order.filled","timestamp":"2026-11-22T09:15:00Z","data":{}}'


class TestSigning:
    def test_secret_is_whsec_and_base64_of_random_bytes(self) -> None:
        secret = new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
        assert secret_key(secret) == base64.b64decode(secret[6:])
        assert new_secret() != secret

    def test_standardwebhooks_verifies_our_headers(self) -> None:
        secret = new_secret()
        headers = signed_headers([secret], "msg_1", int(time.time()), BODY)
        assert Webhook(secret).verify(BODY, headers)["type"] == "order.filled"
        assert headers["webhook-id"] == "msg_1"
        assert headers["webhook-signature"].startswith("v1,")

    def test_signature_matches_the_reference_implementation(self) -> None:
        secret = new_secret()
        from datetime import UTC, datetime

        reference = Webhook(secret).sign("msg_2", datetime.fromtimestamp(1700000000, UTC), "x")
        assert signature(secret, "msg_2", 1700000000, b"x") == reference

    def test_a_changed_body_or_another_secret_fails(self) -> None:
        secret = new_secret()
        headers = signed_headers([secret], "msg_1", int(time.time()), BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY.replace(b"filled", b"cancelled"), headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(BODY, headers)

    def test_during_a_rotation_either_secret_verifies(self) -> None:
        old, new = new_secret(), new_secret()
        headers = signed_headers([new, old], "msg_1", int(time.time()), BODY)
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            Webhook(secret).verify(BODY, headers)

    def test_secret_is_not_a_whsec_secret(self) -> None:
        with pytest.raises(ValueError, match="whsec_"):
            secret_key("whsec_not base64!")

    def test_secrets_never_reach_a_log_line(self) -> None:
        secret = new_secret()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent with %s", (secret,), None)
        ContextFilter().filter(record)
        assert secret not in record.getMessage()
        assert secret.removeprefix("whsec_") not in record.getMessage()
