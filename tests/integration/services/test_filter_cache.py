"""Filters at publish: read and compiled once per subscription version, bounded in size, fresh after a change."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import pytest

from chargewire.catalog import load_event_types
from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime
from chargewire.services.publish import Publisher
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.event_store import EventStore, FanOut, Inserted, NewEvents, Subscriber
from tests.integration.services.test_publish import _delivered_events, _subscribe

STATUS = load_event_types()["HardwareStatusNotification"].example


class _Spy:
    """Passes a fan-out on, noting which filters it last asked the store to read (the store may ask it again when
    the subscribers it read differ from those it guessed)."""

    def __init__(self, inner: FanOut) -> None:
        self._inner = inner
        self.asked: set[str] = set()

    def filters_wanted(self, subscribers: Sequence[Subscriber]) -> Collection[str]:
        wanted = self._inner.filters_wanted(subscribers)
        self.asked = set(wanted)
        return wanted

    def deliveries(
        self, subscribers: Sequence[Subscriber], filters: Mapping[str, dict[str, Any] | None]
    ) -> Iterable[NewDelivery]:
        return self._inner.deliveries(subscribers, filters)

    def lease(self) -> PublishLease | None:
        return self._inner.lease()


class SpyingStore(EventStore):
    """The real store, noting the filters each publish read."""

    asked: list[set[str]]

    async def insert_events_with_deliveries(
        self, batches: Sequence[NewEvents], fan_out: FanOut, **options: Any
    ) -> Inserted:
        spy = _Spy(fan_out)
        made = await super().insert_events_with_deliveries(batches, spy, **options)
        self.asked.append(spy.asked)
        return made


async def test_a_filter_is_read_once_per_subscription_version_and_again_after_a_change(runtime: Runtime) -> None:
    filtered = await _subscribe(runtime, "HardwareStatusNotification", {"chargePointId": {"$in": list(range(5000))}})
    store = SpyingStore(runtime.database)
    store.asked = []
    publisher = Publisher(store, max_batch=10)
    before = [event_id for _ in range(3) for event_id in await publisher.publish([{**STATUS, "chargePointId": 7}])]
    assert store.asked == [{filtered}, set(), set()]

    current = await runtime.subscriptions.get(OPERATOR, filtered)
    body = {
        "via": "webhook",
        "notifications": list(current.notifications),
        "webhook": {"callbackUrl": current.callback_url},
        "filter": {"chargePointId": {"$in": [8]}},
    }
    await runtime.subscriptions.replace(OPERATOR, filtered, body)
    after = await publisher.publish([{**STATUS, "chargePointId": 7}, {**STATUS, "chargePointId": 8}])
    assert store.asked[3:] == [{filtered}]
    assert (await _delivered_events(runtime))[filtered] == [*before, after[1]]


async def test_an_in_list_over_the_limit_is_refused_naming_it(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await _subscribe(runtime, "HardwareStatusNotification", {"chargePointId": {"$in": list(range(10_001))}})
    assert refused.value.errors == {"filter.chargePointId.$in": ["$in takes at most 10000 values; got 10001."]}


async def test_a_filter_over_the_size_limit_is_refused_naming_it(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await _subscribe(runtime, "HardwareStatusNotification", {"vendor": {"$in": ["v" * 100] * 3000}})
    assert list(refused.value.errors) == ["filter"]
