"""Kafka streams whose holder died: handed back once its heartbeat stood still while this worker's moved on.

One worker streams a Kafka subscription at a time, under a lease it renews with every batch. A worker that is
killed leaves its lease until it runs out (`worker_lease_s`, 60 s by default), and the whole subscription waits.

Whether a holder is alive is read without comparing clocks, which differ between hosts: each look notes the
heartbeat every other holder last stored, against this process's monotonic clock. A holder whose stored
heartbeat has not changed for `STALE_AFTER_S` while this worker's own changed at least `_OWN_BEATS_MEANWHILE`
times (so the database took writes all along) is taken for dead, and its streams are handed back for any worker
to lease. Workers that never beat (a dispatcher run without a heartbeat) are left to their leases.

A holder that was only stalled, not dead, finds its next recording refused (`LeaseLost`) and stops: what it had
sent is sent again, at least once, and each key's first arrivals keep their order, since both workers send the
same stretch of the log in log order into the same partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chargewire.clock import utcnow
from chargewire.dispatch.heartbeat import HEARTBEAT_INTERVAL_S, STALE_AFTER_S
from chargewire.kafka.stream_store import StreamStore

logger = logging.getLogger(__name__)

# This worker's own heartbeat must have moved this often while a holder's stood still: one move could be the
# last write before the database stopped taking them.
_OWN_BEATS_MEANWHILE = 2


@dataclass(frozen=True)
class _Sighting:
    beat: object  # the holder's heartbeat as stored
    since: float  # monotonic time it was first seen with that heartbeat
    own_beats: int  # how often this worker's heartbeat had moved by then


class HeartbeatWatch:
    """Which holders' heartbeats stood still for `stale_after_s` while this worker's own moved on (pure logic)."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._own: object = None
        self._own_beats = 0
        self._seen: dict[str, _Sighting] = {}

    def dead(self, own: object, holders: Mapping[str, object]) -> set[str]:
        """The holders taken for dead, given this worker's stored heartbeat and each holder's, read together."""
        now = self._clock()
        if own is not None and own != self._own:
            self._own, self._own_beats = own, self._own_beats + 1
        self._seen = {holder: self._sighting(holder, beat, now) for holder, beat in holders.items()}
        return {
            holder
            for holder, sighting in self._seen.items()
            if now - sighting.since >= self._stale_after_s
            and self._own_beats - sighting.own_beats >= _OWN_BEATS_MEANWHILE
        }

    def _sighting(self, holder: str, beat: object, now: float) -> _Sighting:
        """The holder's sighting kept while its heartbeat is the same, or a new one from `now`."""
        known = self._seen.get(holder)
        return known if known is not None and known.beat == beat else _Sighting(beat, now, self._own_beats)


class OrphanedLeases:
    """Hands back the stream leases of holders a `HeartbeatWatch` takes for dead, looking at most every heartbeat."""

    def __init__(
        self,
        streams: StreamStore,
        worker_id: str,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._streams = streams
        self._worker_id = worker_id
        self._watch = HeartbeatWatch(stale_after_s, clock)
        self._clock = clock
        self._looked_at = float("-inf")

    async def hand_back(self) -> int:
        """Hand back the leases of dead holders (at most one look per heartbeat interval); how many."""
        if self._clock() - self._looked_at < HEARTBEAT_INTERVAL_S:
            return 0
        self._looked_at = self._clock()
        own, holders = await self._streams.holders_heartbeats(self._worker_id, utcnow())
        dead = self._watch.dead(own, holders)
        if not dead:
            return 0
        handed_back = await self._streams.hand_back_leases_of(dead)
        if handed_back:
            logger.warning(
                "handed back %d Kafka stream leases of %s: its heartbeat stood still while this worker's went on",
                handed_back,
                ", ".join(sorted(dead)),
            )
        return handed_back
