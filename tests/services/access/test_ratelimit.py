from __future__ import annotations

import pytest

from app.services.access.ratelimit import Policy, RateLimiter, address_limiter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class TestPolicy:
    @pytest.mark.parametrize(
        ("rate", "burst", "header"),
        [
            (100, None, '"default";q=100;w=1'),
            (100, 250, '"default";q=250;w=3'),
            (0.5, None, '"default";q=1;w=2'),
            (2.5, None, '"default";q=3;w=2'),
        ],
    )
    def test_header_is_quota_and_refill_window(
        self, rate: float, burst: int | None, header: str
    ) -> None:
        assert Policy.of("default", rate, burst).header() == header


class TestRateLimiter:
    def test_burst_then_refusal_then_refill(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock=clock)
        policy = Policy.of("p", 2, 4)
        allowed = [limiter.take("k", policy).allowed for _ in range(5)]
        assert allowed == [True, True, True, True, False]
        refused = limiter.take("k", policy)
        assert refused.retry_after == 1
        assert refused.headers()["Retry-After"] == "1"
        assert refused.headers()["RateLimit"] == '"p";r=0;t=2'
        clock.now += 0.5
        assert limiter.take("k", policy).allowed
        assert not limiter.take("k", policy).allowed
        clock.now += 100
        full = limiter.peek("k", policy)
        assert (full.allowed, full.remaining, full.reset) == (True, 4, 0)

    def test_slow_rate_retry_after_covers_the_wait(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock=clock)
        policy = Policy.of("p", 0.2)
        assert limiter.take("k", policy).allowed
        refused = limiter.take("k", policy)
        assert not refused.allowed
        assert refused.retry_after == 5
        clock.now += 4.9
        assert not limiter.take("k", policy).allowed
        clock.now += 0.1
        assert limiter.take("k", policy).allowed

    def test_peek_takes_nothing(self) -> None:
        limiter = RateLimiter(clock=Clock())
        policy = Policy.of("p", 1, 1)
        assert limiter.peek("k", policy).allowed
        assert len(limiter) == 0
        assert limiter.take("k", policy).allowed
        assert not limiter.peek("k", policy).allowed

    def test_partitions_are_independent_and_can_be_dropped(self) -> None:
        limiter = RateLimiter(clock=Clock())
        policy = Policy.of("p", 1, 1)
        assert limiter.take("a", policy).allowed
        assert limiter.take("b", policy).allowed
        assert not limiter.take("a", policy).allowed
        limiter.forget("a")
        assert limiter.take("a", policy).allowed
        limiter.retain({"b"})
        assert len(limiter) == 1

    def test_address_buckets_are_bounded(self) -> None:
        limiter = address_limiter(Clock())
        policy = Policy.of("p", 1, 1)
        for n in range(25_000):
            limiter.take(f"10.0.{n // 256}.{n % 256}", policy)
        assert len(limiter) <= 10_000
