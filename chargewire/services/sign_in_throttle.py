"""Back-office sign-in throttling: slows password guessing without letting a guesser lock an operator out.

Only failures count, in three ways:

| counter            | rule                                                                                  |
|--------------------|---------------------------------------------------------------------------------------|
| (account, client)  | after 3 failures, each further one doubles the wait before this client may try this    |
|                    | account again: 1 s, 2 s, 4 s ... at most 15 min. A success clears it.                  |
| client             | at most 50 failures in 15 min, over every account (one client spraying many accounts). |
| account            | at most 20 failures in 15 min from all clients together (a guess spread over many      |
|                    | addresses). A client that signed in to the account before is not held by this budget.  |

Why this shape: a lockout per account alone would let anyone lock any operator out, indefinitely, by failing on
purpose. Here the attacker's own address is what slows down first; the shared per-account budget, which an
attacker with many addresses can keep spent, holds only browsers that never signed in to that account (the
operator's own browser carries a known-client cookie from its last sign-in), and each window ends after 15 min.
Counters live in the process, and are swept as their windows close.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 3
MAX_DELAY_S = 15 * 60.0
WINDOW_S = 15 * 60.0
CLIENT_BUDGET = 50
ACCOUNT_BUDGET = 20


@dataclass(slots=True)
class _Failures:
    """Failures counted since `opened`, the last at `last`."""

    opened: float
    last: float
    count: int = 0


class SignInThrottle:
    """Decides whether a sign-in may be tried now, and counts the failures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pairs: dict[tuple[str, str], _Failures] = {}
        self._clients: dict[str, _Failures] = {}
        self._accounts: dict[str, _Failures] = {}
        self._last_sweep = clock()

    def wait_s(self, account: str, client: str, known_client: bool) -> int:
        """Seconds before this client may try this account (0: now)."""
        now = self._clock()
        self._sweep(now)
        waits = [self._pair_wait(self._pairs.get((account, client)), now)]
        waits.append(_budget_wait(self._clients.get(client), CLIENT_BUDGET, now))
        if not known_client:
            waits.append(_budget_wait(self._accounts.get(account), ACCOUNT_BUDGET, now))
        return math.ceil(max(waits))

    def failed(self, account: str, client: str) -> None:
        """Count a wrong email or password."""
        now = self._clock()
        pair = self._pairs.setdefault((account, client), _Failures(now, now))
        pair.count += 1
        pair.last = now
        _count(self._clients, client, now)
        _count(self._accounts, account, now)

    def succeeded(self, account: str, client: str) -> None:
        """Forget this client's failures on this account."""
        self._pairs.pop((account, client), None)

    @staticmethod
    def _pair_wait(entry: _Failures | None, now: float) -> float:
        if entry is None or entry.count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_DELAY_S, 2.0 ** (entry.count - FREE_FAILURES))
        return max(0.0, entry.last + delay - now)

    def _sweep(self, now: float) -> None:
        # Closed windows and delays long over are dropped every window, so memory follows recent failures only.
        if now - self._last_sweep < WINDOW_S:
            return
        self._pairs = {key: entry for key, entry in self._pairs.items() if now - entry.last < MAX_DELAY_S + WINDOW_S}
        self._clients = {key: entry for key, entry in self._clients.items() if now - entry.opened < WINDOW_S}
        self._accounts = {key: entry for key, entry in self._accounts.items() if now - entry.opened < WINDOW_S}
        self._last_sweep = now


def _count(windows: dict[str, _Failures], key: str, now: float) -> None:
    entry = windows.get(key)
    if entry is None or now - entry.opened >= WINDOW_S:
        entry = windows[key] = _Failures(now, now)
    entry.count += 1
    entry.last = now


def _budget_wait(entry: _Failures | None, budget: int, now: float) -> float:
    if entry is None or entry.count < budget or now - entry.opened >= WINDOW_S:
        return 0.0
    return entry.opened + WINDOW_S - now
