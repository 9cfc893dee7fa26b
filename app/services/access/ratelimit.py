"""Token-bucket rate limits, per partition (an API key's digest, or a client address).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one token. Buckets live in this process only: with N replicas a client may get up to
N times the rate. Advertised with the RateLimit header fields of
draft-ietf-httpapi-ratelimit-headers-10 (structured-field syntax):

    RateLimit-Policy: "default";q=100;w=1   (quota q per window of w seconds)
    RateLimit: "default";r=42;t=1           (r remaining now, t seconds until full again)

A token bucket has no fixed window; ``q`` is the burst and ``w`` the seconds the bucket needs
to refill from empty, which is the tightest window over which the quota holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

POLICY_HEADER = "RateLimit-Policy"
STATUS_HEADER = "RateLimit"

_MAX_ADDRESS_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rate: float  # tokens per second
    burst: int  # bucket size

    @classmethod
    def of(cls, name: str, rate: float, burst: int | None = None) -> Policy:
        """A policy whose burst defaults to one second's worth of tokens (at least one)."""
        return cls(name, rate, burst if burst is not None else max(1, math.ceil(rate)))

    @property
    def window(self) -> int:
        return max(1, math.ceil(self.burst / self.rate))

    def header(self) -> str:
        return f'"{self.name}";q={self.burst};w={self.window}'


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: Policy
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one token is available (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            POLICY_HEADER: self.policy.header(),
            STATUS_HEADER: f'"{self.policy.name}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Buckets by partition. Single event loop, so no locks: each call is one synchronous step."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int | None = None
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max_buckets = max_buckets

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, partition: str, policy: Policy) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(partition)
        if bucket is None:
            self._make_room()
            bucket = self._buckets[partition] = _Bucket(float(policy.burst), now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(policy.burst), bucket.tokens + elapsed * policy.rate)
            bucket.updated = now
        return bucket

    def take(self, partition: str, policy: Policy) -> Decision:
        """Take one token if there is one; the decision carries the header values either way."""
        bucket = self._refilled(partition, policy)
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        return self._decide(bucket, policy, allowed=allowed)

    def peek(self, partition: str, policy: Policy) -> Decision:
        """Whether a request would be allowed now, without taking a token."""
        bucket = self._buckets.get(partition)
        if bucket is None:
            return Decision(True, policy, policy.burst, 0, 0)
        bucket = self._refilled(partition, policy)
        return self._decide(bucket, policy, allowed=bucket.tokens >= 1.0)

    @staticmethod
    def _decide(bucket: _Bucket, policy: Policy, *, allowed: bool) -> Decision:
        missing = policy.burst - bucket.tokens
        reset = math.ceil(missing / policy.rate - 1e-9) if missing > 0 else 0
        retry = 0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / policy.rate - 1e-9))
        return Decision(allowed, policy, int(bucket.tokens), reset, retry)

    def forget(self, partition: str) -> None:
        self._buckets.pop(partition, None)

    def retain(self, partitions: set[str]) -> None:
        """Drop the buckets of partitions no longer known (e.g. revoked keys)."""
        for partition in [p for p in self._buckets if p not in partitions]:
            del self._buckets[partition]

    def _make_room(self) -> None:
        # Per-address buckets must not grow without bound under many addresses: drop the
        # oldest half (insertion order); at worst a dropped address starts with a full bucket.
        if self._max_buckets is None or len(self._buckets) < self._max_buckets:
            return
        for partition in list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[partition]


def address_limiter(clock: Callable[[], float] = time.monotonic) -> RateLimiter:
    return RateLimiter(clock=clock, max_buckets=_MAX_ADDRESS_BUCKETS)
