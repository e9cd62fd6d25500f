"""A circuit breaker per subscription: stop hammering a dead receiver, probe it on the breaker's own clock.

closed ──(N failures in a row)──> open ──(probe time reached)──> half-open: one attempt
   ^                                ^                                 │
   └──────────── success ───────────┼─────────────────────────────────┤
                                    └──────────── failure ────────────┘

The probe time is the breaker's, not the retry time of the delivery that failed last (`probe_delay` in
`retry_policy.py`): a delivery that timed out waits at least a minute for its own retry, and a breaker that
waited with it held every event published meanwhile for that minute after the receiver had healed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargewire.dispatch.retry_policy import DEFAULT_RETRY_AFTER_CAP_S, probe_delay
from chargewire.errors import DeliveryError, PermanentDeliveryError


@dataclass
class _State:
    consecutive_failures: int = 0
    failed_probes: int = 0
    open_until: datetime | None = None
    probing: bool = False


class CircuitBreakers:
    """Breaker state for every subscription this worker has sent to."""

    def __init__(
        self,
        failure_threshold: int = 5,
        *,
        jitter: float = 0.0,
        retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self._jitter = jitter
        self._retry_after_cap_s = retry_after_cap_s
        self._rng = rng
        self._states: dict[str, _State] = {}

    def allows(self, subscription_id: str, now: datetime) -> bool:
        """True when an attempt may start: closed, or open with its probe time reached and no probe out."""
        state = self._states.get(subscription_id)
        if state is None or state.open_until is None:
            return True
        return now >= state.open_until and not state.probing

    def start_attempt(self, subscription_id: str, now: datetime) -> bool:
        """Note an attempt starting; returns True when it is the probe of an open breaker (send one message)."""
        state = self._states.get(subscription_id)
        if state is not None and state.open_until is not None and now >= state.open_until:
            state.probing = True
            return True
        return False

    def record_success(self, subscription_id: str) -> None:
        """Close the breaker."""
        self._states.pop(subscription_id, None)

    def record_failure(
        self, subscription_id: str, error: DeliveryError, schedule: Sequence[float], now: datetime
    ) -> bool:
        """Count a failure; from the threshold on, open the breaker until its next probe time. True when open.

        `schedule` is the subscription's retry schedule. A PermanentDeliveryError (a refusal that retrying cannot
        change) counts, but neither opens the breaker nor moves its probe.
        """
        state = self._states.setdefault(subscription_id, _State())
        state.consecutive_failures += 1
        if state.probing:
            state.failed_probes += 1
            state.probing = False
        if state.consecutive_failures >= self.failure_threshold and not isinstance(error, PermanentDeliveryError):
            delay = probe_delay(state.failed_probes, schedule, self._jitter, error, self._rng, self._retry_after_cap_s)
            state.open_until = now + timedelta(seconds=delay)
        return state.open_until is not None

    def blocked(self, now: datetime) -> set[str]:
        """Subscriptions that may not start an attempt now."""
        return {sub for sub in self._states if not self.allows(sub, now)}

    def open_until(self, subscription_id: str) -> datetime | None:
        """When the breaker of a subscription lets the next probe through, if it is open."""
        state = self._states.get(subscription_id)
        return state.open_until if state else None
