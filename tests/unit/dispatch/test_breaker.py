"""The circuit breaker opens after consecutive failures, lets one probe through at its own probe time (the
retry schedule's steps, never the minute a timed-out delivery waits), and closes on success."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.retry_policy import MAX_PROBE_INTERVAL_S, SLOW_DOWN_FLOOR_S
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SCHEDULE = (0.0, 2.0, 4.0, 8.0)
FIRST_PROBE = NOW + timedelta(seconds=SCHEDULE[1])
RESET = RetryableDeliveryError("The receiver closed the connection before answering.", error_class="reset")
TIMEOUT = RetryableDeliveryError("The receiver did not answer in time.", error_class="timeout")


def _failing(breakers: CircuitBreakers, times: int, error: DeliveryError = RESET, at: datetime = NOW) -> None:
    for _ in range(times):
        breakers.record_failure("sub_a", error, SCHEDULE, at)


def _failed_probe(breakers: CircuitBreakers, at: datetime, error: DeliveryError = RESET) -> None:
    assert breakers.start_attempt("sub_a", at) is True
    breakers.record_failure("sub_a", error, SCHEDULE, at)


def test_breaker_stays_closed_below_the_threshold() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 4)
    assert breakers.allows("sub_a", NOW)
    assert breakers.blocked(NOW) == set()


def test_breaker_opens_at_the_threshold_until_the_schedules_first_retry_step() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    assert not breakers.allows("sub_a", NOW)
    assert breakers.blocked(NOW) == {"sub_a"}
    assert breakers.open_until("sub_a") == FIRST_PROBE


def test_breaker_probes_at_the_schedules_step_not_the_slow_down_floor_when_the_receiver_timed_out() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5, TIMEOUT)
    assert breakers.open_until("sub_a") == FIRST_PROBE
    assert NOW + timedelta(seconds=SLOW_DOWN_FLOOR_S) > FIRST_PROBE


def test_open_breaker_lets_exactly_one_probe_through_at_its_probe_time() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    assert breakers.allows("sub_a", FIRST_PROBE)
    assert breakers.start_attempt("sub_a", FIRST_PROBE) is True
    assert not breakers.allows("sub_a", FIRST_PROBE)


def test_failed_probes_walk_the_schedules_steps_and_repeat_the_last() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    probe_times = [FIRST_PROBE]
    for _ in range(3):
        _failed_probe(breakers, probe_times[-1])
        open_until = breakers.open_until("sub_a")
        assert open_until is not None
        probe_times.append(open_until)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(probe_times)]
    assert gaps == [4.0, 8.0, 8.0]


def test_failed_probes_wait_at_most_the_longest_probe_interval_when_the_schedule_waits_hours() -> None:
    breakers = CircuitBreakers(failure_threshold=1)
    hours = (0.0, 3600.0, 36000.0)
    breakers.record_failure("sub_a", RESET, hours, NOW)
    assert breakers.open_until("sub_a") == NOW + timedelta(seconds=MAX_PROBE_INTERVAL_S)


def test_breaker_waits_as_long_as_the_receivers_retry_after_asks() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    shedding = RetryableDeliveryError("The receiver answered 503.", error_class="http_status", retry_after_s=30.0)
    _failing(breakers, 5, shedding)
    assert breakers.open_until("sub_a") == NOW + timedelta(seconds=30)


def test_a_refusal_counts_but_does_not_open_the_breaker() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5, PermanentDeliveryError("The receiver answered 400.", error_class="http_status"))
    assert breakers.allows("sub_a", NOW)
    assert breakers.open_until("sub_a") is None


def test_success_closes_the_breaker() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 5)
    breakers.start_attempt("sub_a", FIRST_PROBE)
    breakers.record_success("sub_a")
    assert breakers.allows("sub_a", NOW)
    assert breakers.open_until("sub_a") is None


def test_breakers_are_per_subscription() -> None:
    breakers = CircuitBreakers(failure_threshold=1)
    breakers.record_failure("sub_a", RESET, SCHEDULE, NOW)
    assert breakers.allows("sub_b", NOW)


def test_an_attempt_on_a_closed_breaker_is_not_a_probe() -> None:
    breakers = CircuitBreakers(failure_threshold=5)
    _failing(breakers, 2)
    assert breakers.start_attempt("sub_a", NOW) is False
