"""Announced claims: a wake-up that names the webhook deliveries it made due (a publish's NOTIFY on PostgreSQL) lets
a worker with no known backlog (its last claim came back short, nothing it knows of falls due earlier) lease
exactly those, within its caps, in one statement (`DeliveryStore.claim_announced`): no read of whether any is due,
no scan. What that leaves (caps, left-out subscriptions, rows another worker took) is looked for by the usual
claim at once.

Rows no wake-up names (a dead worker's leases run out, another worker's retries fall due, a hand-back) are found only
by the usual claim: a worker kept busy by announcements still makes one at least every `look_every_s`, as an idle
worker's poll would, so those rows never wait for the announcements to stop.
"""

from __future__ import annotations

import time
from datetime import datetime

from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.dialects.base import Announced


class AnnouncedClaims:
    """What wake-ups named since the last claim, and whether the next claim may lease just those."""

    def __init__(self, deliveries: DeliveryStore, look_every_s: float) -> None:
        self._deliveries = deliveries
        self._look_every_s = look_every_s
        self._looked_at = time.monotonic()  # the last usual claim (a scan of what is due)
        self._announced: dict[str, str] = {}  # deliveries wake-ups named since the last claim -> subscription
        self._unnamed = False  # a wake-up since the last claim named nothing: look for whatever is due

    def heard(self, announced: Announced) -> None:
        """A wake-up, naming the deliveries it made due (`announced`) or, when empty, not knowing them all."""
        if announced:
            self._announced.update(announced)
        else:
            self._unnamed = True

    def taken(self) -> list[tuple[str, str]]:
        """What wake-ups named since the last claim, in id order, forgotten here; empty when one named nothing
        (whatever is due is then looked for)."""
        announced, self._announced = self._announced, {}
        unnamed, self._unnamed = self._unnamed, False
        return [] if unnamed else sorted(announced.items())

    def missed(self) -> None:
        """The claim failed: what was announced is still to be found, by a look, once claims work again."""
        self._unnamed = True

    def looked(self) -> None:
        """The usual claim just looked for whatever is due."""
        self._looked_at = time.monotonic()

    def alone(self, backlog: bool, known_due_at: datetime | None, now: datetime) -> bool:
        """Whether to claim just what wake-ups named: one statement, nothing this worker knows of is left behind
        (no `backlog` from its last claim, nothing known to fall due before `now`), and a look not yet owed."""
        return (
            self._deliveries.claims_announced_in_one_statement
            and not backlog
            and (known_due_at is None or known_due_at > now)
            and time.monotonic() - self._looked_at < self._look_every_s
        )
