"""The circuit breaker opens after consecutive failures, lets one probe through at the retry time, and
closes on success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.dispatch.breaker import CircuitBreakers

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def _failing(breakers: CircuitBreakers, times: int, retry_at: datetime = LATER) -> None:
    for _ in range(times):
        breakers.record_failure("sub_a", retry_at)


def test_breaker_stays_closed_below_the_threshold() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 4)
    assert breakers.allows("sub_a", NOW)
    assert breakers.blocked(NOW) == set()


def test_breaker_opens_at_the_threshold_until_the_retry_time() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    assert not breakers.allows("sub_a", NOW)
    assert breakers.blocked(NOW) == {"sub_a"}
    assert breakers.open_until("sub_a") == LATER


def test_open_breaker_lets_exactly_one_probe_through_at_the_retry_time() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    assert breakers.allows("sub_a", LATER)
    assert breakers.start_attempt("sub_a", LATER) is True
    assert not breakers.allows("sub_a", LATER)


def test_failed_probe_opens_the_breaker_until_the_next_retry_time() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    breakers.start_attempt("sub_a", LATER)
    even_later = LATER + timedelta(minutes=30)
    breakers.record_failure("sub_a", even_later)
    assert not breakers.allows("sub_a", LATER + timedelta(minutes=1))
    assert breakers.allows("sub_a", even_later)


def test_success_closes_the_breaker() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    breakers.start_attempt("sub_a", LATER)
    breakers.record_success("sub_a")
    assert breakers.allows("sub_a", NOW)
    assert breakers.open_until("sub_a") is None


def test_breakers_are_per_subscription() -> None:
    breakers = CircuitBreakers(failure_threshold=1)
    breakers.record_failure("sub_a", LATER)
    assert breakers.allows("sub_b", NOW)


def test_an_attempt_on_a_closed_breaker_is_not_a_probe() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 2)
    assert breakers.start_attempt("sub_a", NOW) is False
