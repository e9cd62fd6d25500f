"""Records handed to librdkafka and the bookkeeping of their acknowledgements, as the event loop keeps it.

Records are handed over in batches: one future per batch (`AckBatch`) resolves once librdkafka has answered
every record in it, with each record's outcome (its partition and offset, or a `ProduceFailed`). A future per
record cost more than producing the record. A call that hands records to more than one producer (the queue
filled, or a producer retired between parts) gets one `PendingAcks` over all of its parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from confluent_kafka import KafkaError

from chargewire.errors import DeliveryError

Headers = list[tuple[str, str | bytes | None]]


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class RecordAck:
    """Where the broker wrote a record."""

    partition: int
    offset: int


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class Record:
    """One record to produce: key, value and headers (the topic is the batch's)."""

    key: bytes
    value: bytes
    headers: Headers


class ProduceFailed(Exception):
    """librdkafka did not deliver a record; `cause` is the connection error behind a purge or timeout, if any.

    `failure` is why the connector last failed to connect to one of the cluster's brokers (a blocked address,
    TLS), if it did: librdkafka itself only sees a broker that closed the connection.
    """

    def __init__(
        self, error: KafkaError, cause: KafkaError | None = None, failure: DeliveryError | None = None
    ) -> None:
        super().__init__(error.str())
        self.error = error
        self.cause = cause
        self.failure = failure


class ClusterRefused(ProduceFailed):
    """librdkafka refused a cluster configuration's settings: no producer could be made for it."""


RecordOutcome = RecordAck | ProduceFailed


class Retiring(Protocol):
    """A producer as its records' acknowledgements see it: whether it retired."""

    @property
    def retired(self) -> bool:
        """True once it takes no more records: its successor does."""
        ...


class PendingAcks:
    """The acknowledgements of records handed to librdkafka together, in the order they were given."""

    def __init__(self, parts: list[asyncio.Future[list[RecordOutcome]]], producers: Sequence[Retiring]) -> None:
        self._parts = parts
        self._producers = producers

    @property
    def stranded(self) -> bool:
        """Some records are unanswered on a producer that retired: records given to its successor may overtake them."""
        return any(producer.retired for producer in self._producers) and not all(part.done() for part in self._parts)

    async def outcomes(self) -> list[RecordOutcome]:
        """Wait until every record is answered; one outcome per record, in order."""
        if len(self._parts) == 1:
            return await self._parts[0]
        return [outcome for part in await asyncio.gather(*self._parts) for outcome in part]


class AckBatch:
    """The outcomes of records produced together; its future resolves when the last one is answered.

    Only the event loop touches it: the poll thread passes delivery reports over, it never settles one itself.
    """

    __slots__ = ("future", "outcomes", "unanswered")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.outcomes: list[RecordOutcome | None] = [None] * size
        self.unanswered = size
        self.future: asyncio.Future[list[RecordOutcome]] = loop.create_future()
        self._resolve_if_answered()

    @property
    def answered(self) -> bool:
        """True once every record has its outcome."""
        return self.unanswered == 0

    def settle(self, index: int, outcome: RecordOutcome) -> None:
        """Note one record's outcome (the first report counts)."""
        if self.outcomes[index] is None:
            self.outcomes[index] = outcome
            self.unanswered -= 1
            self._resolve_if_answered()

    def truncate(self, size: int) -> None:
        """Keep only the first `size` records: librdkafka's queue was full before the rest went in."""
        self.unanswered -= sum(1 for outcome in self.outcomes[size:] if outcome is None)
        del self.outcomes[size:]
        self._resolve_if_answered()

    def fail_unanswered(self, error: ProduceFailed) -> None:
        """Answer every record still waiting with `error`."""
        for index, outcome in enumerate(self.outcomes):
            if outcome is None:
                self.settle(index, error)

    def _resolve_if_answered(self) -> None:
        if self.unanswered == 0 and not self.future.done():
            self.future.set_result(cast(list[RecordOutcome], self.outcomes))


def answered(outcomes: list[RecordOutcome], loop: asyncio.AbstractEventLoop) -> asyncio.Future[list[RecordOutcome]]:
    """A future already resolved with `outcomes`: records answered without reaching librdkafka."""
    future: asyncio.Future[list[RecordOutcome]] = loop.create_future()
    future.set_result(outcomes)
    return future
