"""The leases a worker took up with no claim (a hand-off of its own process's publish, an assignment from another's),
kept while they last: rows the database shows only as leased to it and untouched since their publish, which it
holds (in flight, waiting, or done and not yet recorded). A listener that connects again gives back the others
(`services.worker_assignments`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from chargewire.clock import utcnow
from chargewire.store.delivery_writes import PublishLease

# Leases whose end has passed are dropped every this many new ones: a clock read per hand-off cost more.
_PRUNE_EVERY = 64


class TakenLeases:
    """The leases taken up with no claim, until they run out."""

    def __init__(self) -> None:
        self._leases: deque[PublishLease] = deque()

    def add(self, lease: PublishLease) -> None:
        """`lease` was taken up."""
        leases = self._leases
        leases.append(lease)
        if len(leases) % _PRUNE_EVERY == 0:
            now = utcnow()
            while leases and leases[0].until < now:
                leases.popleft()

    def holding(self, delivery_ids: Sequence[str]) -> set[str]:
        """Those of `delivery_ids` in a lease taken up (perhaps run out since)."""
        wanted = set(delivery_ids)
        return {delivery_id for lease in self._leases for delivery_id in lease.delivery_ids & wanted}
