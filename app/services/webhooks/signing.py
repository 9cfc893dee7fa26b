"""Standard Webhooks signing: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

A secret is ``whsec_`` + base64 of 24 random bytes; the HMAC-SHA256 key is the decoded
bytes, the signed content ``"{id}.{timestamp}.{body}"``. During a rotation the header
carries one ``v1,`` signature per live secret (space-separated), so a receiver holding
either the old or the new secret verifies every message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from functools import lru_cache

from app.logs import register_secret

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_SECRET_BYTES = 24


def new_secret() -> str:
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()
    protect(secret)
    return secret


def protect(secret: str) -> None:
    """Keep the secret (and its bare base64 part) out of every log line."""
    register_secret(secret)
    register_secret(secret.removeprefix(SECRET_PREFIX))


@lru_cache(maxsize=1024)
def secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a whsec_ secret") from exc


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets_: list[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in secrets_
        ),
        "content-type": "application/json",
    }
