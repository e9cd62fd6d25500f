"""The retry policy: schedule, jitter, Retry-After, back-off floors (the Kafka one too), limits."""

from __future__ import annotations

import random

import pytest

from chargewire.config import DEFAULT_RETRY_SCHEDULE_S, Settings
from chargewire.dispatch.retry_policy import (
    KAFKA_RETRY_MARGIN_S,
    SLOW_DOWN_FLOOR_S,
    delays_below,
    kafka_retry_floor_s,
    next_attempt_delay,
)
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

SCHEDULE = DEFAULT_RETRY_SCHEDULE_S


def server_error() -> RetryableDeliveryError:
    """What a 500 answer comes back as."""
    return RetryableDeliveryError("The receiver answered 500.", error_class="http_status")


def throttled(retry_after_s: float | None = None) -> RetryableDeliveryError:
    """What a 429 answer comes back as."""
    return RetryableDeliveryError("The receiver answered 429.", error_class="throttled", retry_after_s=retry_after_s)


def unavailable(retry_after_s: float | None) -> RetryableDeliveryError:
    """What a 503 answer comes back as."""
    return RetryableDeliveryError("The receiver answered 503.", error_class="http_status", retry_after_s=retry_after_s)


def timeout() -> RetryableDeliveryError:
    """What a receiver that does not answer in time comes back as."""
    return RetryableDeliveryError("The receiver did not answer in time.", error_class="timeout")


@pytest.mark.parametrize(("attempt", "expected"), [(1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (7, 36000.0)])
def test_retry_policy_follows_the_schedule_without_jitter(attempt: int, expected: float) -> None:
    assert next_attempt_delay(attempt, SCHEDULE, 0.0, server_error()) == expected


def test_retry_policy_stops_after_max_attempts() -> None:
    assert next_attempt_delay(len(SCHEDULE) - 1, SCHEDULE, 0.0, server_error()) == SCHEDULE[-1]
    assert next_attempt_delay(len(SCHEDULE), SCHEDULE, 0.0, server_error()) is None
    assert next_attempt_delay(len(SCHEDULE) + 3, SCHEDULE, 0.0, server_error()) is None


def test_retry_policy_gives_the_default_schedule_eight_attempts_over_about_27_6_hours() -> None:
    delays = []
    attempt = 1
    while (delay := next_attempt_delay(attempt, SCHEDULE, 0.0, server_error())) is not None:
        delays.append(delay)
        attempt += 1

    assert attempt == 8
    assert sum(delays) / 3600 == pytest.approx(27.58, abs=0.01)


def test_retry_policy_jitter_stays_within_the_fraction_and_varies() -> None:
    rng = random.Random(7)

    delays = [next_attempt_delay(2, SCHEDULE, 0.2, server_error(), rng=rng) for _ in range(500)]

    assert all(240.0 <= delay <= 360.0 for delay in delays if delay is not None)
    assert len(set(delays)) > 400
    assert min(d for d in delays if d is not None) < 250
    assert max(d for d in delays if d is not None) > 350


def test_retry_policy_is_reproducible_with_a_seeded_rng() -> None:
    first = next_attempt_delay(3, SCHEDULE, 0.2, server_error(), rng=random.Random(1))
    second = next_attempt_delay(3, SCHEDULE, 0.2, server_error(), rng=random.Random(1))

    assert first == second


def test_retry_policy_gives_up_at_once_on_a_permanent_error() -> None:
    gone = PermanentDeliveryError("The receiver answered 410 Gone.", error_class="http_status")

    assert next_attempt_delay(1, SCHEDULE, 0.2, gone) is None


def test_retry_policy_needs_no_attempt_after_success() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.2, None) is None


def test_retry_policy_treats_a_plain_delivery_error_as_retryable() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.0, DeliveryError()) == 5.0


def test_retry_policy_honours_a_longer_retry_after() -> None:
    assert next_attempt_delay(2, SCHEDULE, 0.0, unavailable(retry_after_s=900.0)) == 900.0


def test_retry_policy_never_shortens_the_schedule_for_a_retry_after() -> None:
    assert next_attempt_delay(3, SCHEDULE, 0.0, unavailable(retry_after_s=10.0)) == 1800.0


def test_retry_policy_caps_retry_after() -> None:
    delay = next_attempt_delay(2, SCHEDULE, 0.0, unavailable(retry_after_s=7 * 86400.0), retry_after_cap_s=3600.0)

    assert delay == 3600.0


def test_retry_policy_cap_never_cuts_below_the_schedule() -> None:
    delay = next_attempt_delay(5, SCHEDULE, 0.0, unavailable(retry_after_s=86400.0), retry_after_cap_s=60.0)

    assert delay == 18000.0


def test_retry_policy_waits_at_least_a_minute_after_a_timeout() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.2, timeout(), rng=random.Random(3)) == SLOW_DOWN_FLOOR_S == 60.0


def test_retry_policy_waits_at_least_a_minute_after_a_429_without_retry_after() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.0, throttled()) == 60.0


def test_retry_policy_honours_retry_after_on_a_429_above_the_floor() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.0, throttled(retry_after_s=120.0)) == 120.0
    assert next_attempt_delay(1, SCHEDULE, 0.0, throttled(retry_after_s=1.0)) == 60.0


def test_retry_policy_keeps_the_floor_out_of_ordinary_failures() -> None:
    assert next_attempt_delay(1, SCHEDULE, 0.0, server_error()) == 5.0


def test_retry_policy_allows_exactly_one_more_attempt_after_a_resend() -> None:
    # A failed delivery had all 8 attempts; a resend sets attempt_limit to 9 and attempt 9 runs.
    assert next_attempt_delay(9, SCHEDULE, 0.0, server_error(), attempt_limit=9) is None
    # Resent after 3 attempts (a permanent 4xx): attempt 4 is the last whatever the schedule says.
    assert next_attempt_delay(4, SCHEDULE, 0.0, server_error(), attempt_limit=4) is None


def test_retry_policy_attempt_limit_only_ever_lowers_the_number_of_attempts() -> None:
    assert next_attempt_delay(2, SCHEDULE, 0.0, server_error(), attempt_limit=20) == 300.0
    assert next_attempt_delay(len(SCHEDULE), SCHEDULE, 0.0, server_error(), attempt_limit=20) is None


def test_retry_policy_with_a_custom_schedule() -> None:
    schedule = [0.0, 1.0, 2.0]

    assert next_attempt_delay(1, schedule, 0.0, server_error()) == 1.0
    assert next_attempt_delay(2, schedule, 0.0, server_error()) == 2.0
    assert next_attempt_delay(3, schedule, 0.0, server_error()) is None


def test_retry_policy_with_a_single_attempt_schedule_never_retries() -> None:
    assert next_attempt_delay(1, [0.0], 0.0, server_error()) is None


def test_retry_policy_waits_at_least_the_floor_whatever_the_jitter_when_the_schedule_is_shorter() -> None:
    rng = random.Random(5)

    delays = {next_attempt_delay(1, SCHEDULE, 0.2, server_error(), rng=rng, min_delay_s=11.0) for _ in range(200)}

    assert delays == {11.0}


def test_retry_policy_floor_leaves_longer_delays_alone() -> None:
    assert next_attempt_delay(2, SCHEDULE, 0.0, server_error(), min_delay_s=11.0) == 300.0
    assert next_attempt_delay(1, SCHEDULE, 0.0, timeout(), min_delay_s=11.0) == SLOW_DOWN_FLOOR_S


def test_retry_policy_floor_never_adds_an_attempt() -> None:
    gone = PermanentDeliveryError("The record is too large.", error_class="message_too_large")

    assert next_attempt_delay(1, SCHEDULE, 0.0, gone, min_delay_s=11.0) is None
    assert next_attempt_delay(len(SCHEDULE), SCHEDULE, 0.0, server_error(), min_delay_s=11.0) is None
    assert next_attempt_delay(4, SCHEDULE, 0.0, server_error(), attempt_limit=4, min_delay_s=11.0) is None


def test_kafka_retry_floor_outlasts_the_message_timeout_by_the_margin() -> None:
    assert kafka_retry_floor_s(2.0) == 2.0 + KAFKA_RETRY_MARGIN_S
    assert KAFKA_RETRY_MARGIN_S > 0


def test_kafka_retry_floor_raises_the_default_first_retry_above_the_default_message_timeout() -> None:
    message_timeout_s = Settings.model_fields["kafka_message_timeout_s"].default
    floor_s = kafka_retry_floor_s(message_timeout_s)
    first_retry = next_attempt_delay(1, SCHEDULE, 0.2, server_error(), min_delay_s=floor_s)

    assert delays_below(SCHEDULE, floor_s) == [5.0]
    assert first_retry is not None
    assert first_retry > message_timeout_s


def test_delays_below_leaves_out_the_first_attempt() -> None:
    assert delays_below([0.0, 20.0, 1.0], 10.0) == [1.0]


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.2), (1, -0.1), (1, 1.0)])
def test_retry_policy_rejects_impossible_arguments(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        next_attempt_delay(attempt, SCHEDULE, jitter, server_error())
