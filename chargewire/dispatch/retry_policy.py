"""The retry policy: when a failed delivery is tried again, or that it is not.

`schedule[i]` is the delay before attempt i + 1, so `schedule[0]` (0 by default) is the first attempt and a
delivery gets `len(schedule)` attempts in all. After attempt n fails with `error`:

    no more attempts (None)   if error is a PermanentDeliveryError, or n >= len(schedule),
                              or n >= attempt_limit (a resend allows exactly one more attempt)
    scheduled = schedule[n] x (1 + u),  u uniform in [-jitter, +jitter]
    delay     = max(scheduled, min(retry_after, retry_after_cap_s))   when the error carries Retry-After
    delay     = max(delay, 60 s)                                        after a timeout or throttling (429)
    delay     = max(delay, min_delay_s)                                 always (Kafka: `kafka_retry_floor_s`)

Retry-After (sent with 429 and 503) therefore never shortens the schedule and never stretches it past the
cap; the 60 s floor gives a receiver that is slow or shedding load room to recover. The policy reads the
error's type and `error_class`, never its message.

An open circuit breaker (`breaker.py`) has its own, shorter clock, `probe_delay`: after k of its probes failed
it waits `schedule[1 + k]` (the last step repeated), at most MAX_PROBE_INTERVAL_S, jittered, and at least what
Retry-After asks (up to the cap). The 60 s floor does not apply: a probe is one request at a time, and the
events published meanwhile, due at once, should reach a receiver within seconds of it healing, not a minute
after its last timeout.

A failed Kafka record waits at least its message timeout plus `KAFKA_RETRY_MARGIN_S` (decision 0005). Its
retry may be claimed by another worker, which cannot see the records of the same subscription still in
flight in the failing worker's librdkafka queue; librdkafka answers each of those by its message timeout, so
once the retry is due they have landed or failed, and none can land after it. The margin covers the way of
librdkafka's reports to the event loop (polled every 100 ms) and clock differences between workers' hosts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

DEFAULT_RETRY_AFTER_CAP_S = 24 * 3600.0
SLOW_DOWN_FLOOR_S = 60.0
# error_class values after which the receiver gets at least SLOW_DOWN_FLOOR_S.
SLOW_DOWN_ERROR_CLASSES = frozenset({"timeout", "throttled"})
KAFKA_RETRY_MARGIN_S = 1.0

# An open breaker probes at least this often, whatever the schedule's later steps (hours, by default) say.
MAX_PROBE_INTERVAL_S = 60.0

_rng = random.Random()


def next_attempt_delay(
    attempt_number: int,
    schedule: Sequence[float],
    jitter: float,
    error: DeliveryError | None,
    rng: random.Random | None = None,
    retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S,
    attempt_limit: int | None = None,
    min_delay_s: float = 0.0,
) -> float | None:
    """Seconds to wait before the next attempt after attempt `attempt_number` (1-based), or None for no more.

    Args:
        attempt_number: the attempt that just ended.
        schedule: delays before each attempt; element i comes before attempt i + 1.
        jitter: fraction (0 <= jitter < 1) by which a scheduled delay varies either way.
        error: why the attempt failed; None (success) needs no further attempt.
        rng: randomness for the jitter (seed one in tests).
        retry_after_cap_s: the longest wait a Retry-After header can ask for.
        attempt_limit: attempts allowed in all when lower than the schedule's (set by a resend).
        min_delay_s: the shortest wait, whatever the schedule says (`kafka_retry_floor_s` for Kafka records).
    """
    if attempt_number < 1:
        raise ValueError("attempt_number starts at 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if error is None or isinstance(error, PermanentDeliveryError):
        return None
    limit = len(schedule) if attempt_limit is None else min(len(schedule), attempt_limit)
    if attempt_number >= limit:
        return None
    delay = _honouring_retry_after(_jittered(schedule[attempt_number], jitter, rng), error, retry_after_cap_s)
    if error.error_class in SLOW_DOWN_ERROR_CLASSES:
        delay = max(delay, SLOW_DOWN_FLOOR_S)
    return max(delay, min_delay_s)


def probe_delay(
    failed_probes: int,
    schedule: Sequence[float],
    jitter: float,
    error: DeliveryError,
    rng: random.Random | None = None,
    retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S,
) -> float:
    """Seconds an open circuit breaker waits before its next probe, once `failed_probes` probes have failed."""
    steps = schedule[1:] or schedule or (0.0,)
    scheduled = min(steps[min(failed_probes, len(steps) - 1)], MAX_PROBE_INTERVAL_S)
    return _honouring_retry_after(_jittered(scheduled, jitter, rng), error, retry_after_cap_s)


def _jittered(scheduled: float, jitter: float, rng: random.Random | None) -> float:
    return max(0.0, scheduled) * (1 + (rng or _rng).uniform(-jitter, jitter))


def _honouring_retry_after(delay: float, error: DeliveryError, retry_after_cap_s: float) -> float:
    if isinstance(error, RetryableDeliveryError) and error.retry_after_s is not None:
        return max(delay, min(error.retry_after_s, retry_after_cap_s))
    return delay


def kafka_retry_floor_s(message_timeout_s: float) -> float:
    """The shortest wait before a failed Kafka record is tried again: the message timeout plus a margin."""
    return message_timeout_s + KAFKA_RETRY_MARGIN_S


def delays_below(schedule: Sequence[float], floor_s: float) -> list[float]:
    """The retry delays of `schedule` (its first entry is the first attempt) that a floor of `floor_s` raises."""
    return [delay for delay in schedule[1:] if delay < floor_s]
