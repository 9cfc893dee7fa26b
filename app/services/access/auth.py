"""API keys, accounts, scopes and rate limits.

Keys come from ``API_KEY`` (account ``default``, every scope) and from the key files in the
tokens folder (``app.services.access.keys``), merged into one dict by SHA-256 digest: lookup is
O(1), and the digest found is compared again with ``hmac.compare_digest``, so no step
compares key material in variable time (a dict lookup on a digest reveals nothing about the
key). Key files are polled and re-read when they change; a bad file is logged by name and
skipped, the other keys keep working. Logs and errors show a short fingerprint only.

``admit`` is the whole gate for one request: the per-address limit on failed attempts
(checked before the key, so guessing gains nothing once it trips), the key, then the key's
token bucket. ``authenticate`` alone is the plain lookup (e.g. for a WebSocket first message).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.errors import Forbidden, RateLimited, Unauthenticated
from app.logs import register_secret
from app.metrics import Metrics
from app.services.access.keys import (
    ALL_SCOPES,
    ApiKey,
    LoadResult,
    Scope,
    Snapshot,
    digest,
    fingerprint,
    load_directory,
    snapshot,
)
from app.services.access.ratelimit import Policy, RateLimiter, address_limiter

__all__ = ["ALL_SCOPES", "Admission", "ApiKey", "AuthService", "Scope", "digest", "fingerprint"]

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class Admission:
    key: ApiKey
    headers: dict[str, str]  # RateLimit-Policy and RateLimit, for the response


class AuthService:
    def __init__(
        self,
        *,
        api_key: str | None,
        tokens_dir: Path | None = None,
        rate_limit: float = 100.0,
        rate_limit_burst: int | None = None,
        unauthenticated_rate_limit: float = 5.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        default_max_position: Decimal | None = None,
    ) -> None:
        self._tokens_dir = tokens_dir
        self._metrics = metrics
        self._static: dict[str, ApiKey] = {}
        if api_key:
            register_secret(api_key)
            key = ApiKey(DEFAULT_ACCOUNT, ALL_SCOPES, digest(api_key), source="API_KEY")
            self._static[key.key_sha256] = key
        self._keys: dict[str, ApiKey] = dict(self._static)
        self._position_limits: dict[str, Decimal] = {}
        self._default_max_position = default_max_position
        self._snapshot: Snapshot | None = None
        self._default_policy = Policy.of("default", rate_limit, rate_limit_burst)
        self._unauthenticated_policy = Policy.of("unauthenticated", unauthenticated_rate_limit)
        self._key_buckets = RateLimiter(clock=clock)
        self._address_buckets = address_limiter(clock)
        self.reload()

    def position_limit(self, account: str) -> Decimal | None:
        """The account's maximum net position per instrument: its key file's
        ``max_position``, else ``RISK_MAX_POSITION`` (None: no limit)."""
        return self._position_limits.get(account, self._default_max_position)

    # -- key sources ------------------------------------------------------------------------

    @property
    def keys(self) -> list[ApiKey]:
        return list(self._keys.values())

    def reload(self) -> bool:
        """Re-read the key files if they changed since the last load; True when reloaded."""
        if self._tokens_dir is None:
            self._set_gauges(0)
            return False
        current = snapshot(self._tokens_dir)
        if current == self._snapshot:
            return False
        self._install(load_directory(self._tokens_dir), current)
        return True

    async def watch(self, poll_seconds: float) -> None:
        """Poll the key files forever (a background task); file I/O runs in a thread."""
        directory = self._tokens_dir
        if directory is None:
            return
        while True:
            await asyncio.sleep(poll_seconds)
            try:
                current = await asyncio.to_thread(snapshot, directory)
                if current != self._snapshot:
                    result = await asyncio.to_thread(load_directory, directory)
                    self._install(result, current)
            except Exception:
                log.exception("reading key files in %s failed; keeping the current keys", directory)

    def _install(self, result: LoadResult, current: Snapshot) -> None:
        keys = dict(self._static)
        skipped = 0
        for name, problem in result.errors:
            log.warning("skipping key file %s: %s", name, problem)
            skipped += 1
        for loaded in result.keys:
            key = loaded.key
            if loaded.plain is not None:
                register_secret(loaded.plain)
            if key.key_sha256 in keys:
                other = keys[key.key_sha256].source
                log.warning(
                    "skipping key file %s: same key (fingerprint %s) as %s",
                    key.source,
                    key.fingerprint,
                    other,
                )
                skipped += 1
                continue
            keys[key.key_sha256] = key
        self._log_changes(self._keys, keys)
        self._keys = keys
        limits: dict[str, Decimal] = {}
        for key in keys.values():  # several keys of one account: the smallest limit
            if key.max_position is not None:
                known = limits.get(key.account)
                limits[key.account] = min(known, key.max_position) if known else key.max_position
        self._position_limits = limits
        self._snapshot = current
        self._key_buckets.retain(set(keys))
        self._set_gauges(skipped)

    @staticmethod
    def _log_changes(old: dict[str, ApiKey], new: dict[str, ApiKey]) -> None:
        for key_digest, key in new.items():
            before = old.get(key_digest)
            if before is None:
                log.info(
                    "API key added: account %s, fingerprint %s, scopes %s (%s)",
                    key.account,
                    key.fingerprint,
                    ",".join(sorted(key.scopes)),
                    key.source,
                )
            elif before != key:
                log.info(
                    "API key changed: account %s, fingerprint %s", key.account, key.fingerprint
                )
        for key_digest, key in old.items():
            if key_digest not in new:
                log.info(
                    "API key removed: account %s, fingerprint %s", key.account, key.fingerprint
                )

    def _set_gauges(self, skipped: int) -> None:
        if self._metrics is not None:
            self._metrics.api_keys.set(len(self._keys))
            self._metrics.api_key_file_errors.set(skipped)

    # -- per request ------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.auth_failures.labels(reason=reason).inc()

    def authenticate(self, presented: str | None) -> ApiKey:
        """The key for ``presented``, or ``Unauthenticated``. No rate limiting here."""
        if not presented:
            self._fail("missing_key")
            raise Unauthenticated()
        wanted = digest(presented)
        found = self._keys.get(wanted)
        if found is None or not hmac.compare_digest(found.key_sha256, wanted):
            self._fail("unknown_key")
            log.info("unknown API key (fingerprint %s)", fingerprint(wanted))
            raise Unauthenticated(f"unknown API key (fingerprint {fingerprint(wanted)})")
        return found

    def admit(self, presented: str | None, *, address: str | None) -> Admission:
        """Authenticate and rate-limit one request from ``address`` (the client's IP)."""
        partition = address or "unknown"
        blocked = self._address_buckets.peek(partition, self._unauthenticated_policy)
        if not blocked.allowed:
            self._fail("address_rate_limited")
            raise RateLimited(
                f"too many requests without a valid API key; retry in {blocked.retry_after} s",
                headers={"Retry-After": str(blocked.retry_after)},
            )
        try:
            key = self.authenticate(presented)
        except Unauthenticated:
            self._address_buckets.take(partition, self._unauthenticated_policy)
            raise
        decision = self._key_buckets.take(key.key_sha256, self.policy_for(key))
        if not decision.allowed:
            self._fail("rate_limited")
            raise RateLimited(
                f"rate limit exceeded for this key; retry in {decision.retry_after} s",
                headers=decision.headers(),
            )
        return Admission(key, decision.headers())

    def policy_for(self, key: ApiKey) -> Policy:
        if key.rate_limit is None and key.burst is None:
            return self._default_policy
        return Policy.of("key", key.rate_limit or self._default_policy.rate, key.burst)

    def describe(self, key: ApiKey) -> dict[str, Any]:
        """What ``GET /me`` says about a key: its account, scopes, fingerprint, rate limit."""
        policy = self.policy_for(key)
        return {
            "account": key.account,
            "scopes": sorted(scope.value for scope in key.scopes),
            "fingerprint": key.fingerprint,
            "rate_limit": {"requests_per_second": policy.rate, "burst": policy.burst},
        }

    def authorise(self, key: ApiKey, scope: Scope) -> ApiKey:
        if scope not in key.scopes:
            self._fail("missing_scope")
            raise Forbidden(f"this key lacks the {scope.value!r} scope")
        return key
