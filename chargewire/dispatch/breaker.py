"""A circuit breaker per subscription: stop hammering a dead receiver, probe it at the retry times.

closed ──(N failures in a row)──> open ──(probe time reached)──> half-open: one attempt
   ^                                ^                                 │
   └──────────── success ───────────┼─────────────────────────────────┤
                                    └──────────── failure ────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class _State:
    consecutive_failures: int = 0
    open_until: datetime | None = None
    probing: bool = False


class CircuitBreakers:
    """Breaker state for every subscription this worker has sent to."""

    def __init__(self, failure_threshold: int = 5) -> None:
        self.failure_threshold = failure_threshold
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

    def record_failure(self, subscription_id: str, retry_at: datetime | None) -> bool:
        """Count a failure; opens the breaker until `retry_at` at the threshold. Returns True when open."""
        state = self._states.setdefault(subscription_id, _State())
        state.consecutive_failures += 1
        state.probing = False
        if state.consecutive_failures >= self.failure_threshold and retry_at is not None:
            state.open_until = retry_at
        return state.open_until is not None

    def blocked(self, now: datetime) -> set[str]:
        """Subscriptions that may not start an attempt now."""
        return {sub for sub in self._states if not self.allows(sub, now)}

    def open_until(self, subscription_id: str) -> datetime | None:
        """When the breaker of a subscription lets the next probe through, if it is open."""
        state = self._states.get(subscription_id)
        return state.open_until if state else None
