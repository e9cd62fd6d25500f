"""The per-token rate limiter: a fixed one-minute window per key that opens at the key's first request."""

from __future__ import annotations

from chargewire.api.rate_limit import RateLimiter
from tests.support.manual_clock import ManualClock


def test_rate_limiter_allows_the_limit_then_refuses_until_the_window_closes() -> None:
    clock = ManualClock()
    limiter = RateLimiter(3, clock)
    decisions = [limiter.hit("token") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    clock.now += 45.2
    refused = limiter.hit("token")
    assert not refused.allowed
    assert refused.retry_after_s == 15
    clock.now += 14.8
    assert limiter.hit("token").allowed


def test_rate_limiter_counts_each_key_on_its_own() -> None:
    limiter = RateLimiter(1, ManualClock())
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed
    assert limiter.hit("b").allowed


def test_rate_limiter_forgets_closed_windows() -> None:
    clock = ManualClock()
    limiter = RateLimiter(5, clock)
    for key in range(100):
        limiter.hit(str(key))
    clock.now += 61
    limiter.hit("fresh")
    assert len(limiter._windows) == 1
