"""What the Kafka path says of a stream: its place in the log, what one read of it returns, what a look for ready
streams finds, a lost lease."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chargewire.store.delivery_records import ClaimedDelivery


@dataclass(frozen=True, slots=True)
class Stream:
    """A Kafka subscription's place in the log, and the stretches it skips ((from, to], to None: open)."""

    subscription_id: str
    position: int
    pauses: tuple[tuple[int, int | None], ...] = ()

    def skips(self, seq: int) -> bool:
        """Whether the event numbered `seq` was published while the subscription was disabled."""
        return any(seq > start and (end is None or seq <= end) for start, end in self.pauses)


@dataclass(frozen=True, slots=True)
class StreamRead:
    """The next events of a stream (as deliveries to attempt), and the position after them."""

    deliveries: list[ClaimedDelivery]
    position: int
    at_end: bool
    stopped: bool = False  # the subscription was disabled, deleted or moved off Kafka: stream no further


@dataclass(frozen=True, slots=True)
class StreamLook:
    """The streams ready to lease, and whether any enabled Kafka subscription has a stream at all."""

    ready: list[Stream]
    streams_exist: bool


PayloadCheck = Callable[[bytes], bool]


class LeaseLost(Exception):
    """The stream's lease ran out and another worker took it: this batch is not recorded here."""
