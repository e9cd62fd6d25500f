"""One entity's Kafka records keep their publishing order across broker faults (issue 24), with the worker in the
API's process: publishing goes on while a burst of events is accepted just before the broker is killed for
longer than the message timeout, frozen, or cut off, and every key's first arrivals in the topic follow
publishing order, with every event present."""

from __future__ import annotations

import functools
import uuid

import orjson
import pytest

from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from tests.support.broker_faults import FAULTS, PARTITIONS, overtaken
from tests.support.kafka_order import ORDER_SETTINGS, publish_through_a_fault

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short message timeout, so an outage outlasts it; retries every few seconds, with the default jitter."""
    return settings.model_copy(update=ORDER_SETTINGS)


# make test runs the killed broker on SQLite, the store of a `serve` that delivers in its own process; PostgreSQL's
# stream under the same fault is the worker processes' test's (tests/acceptance), each run ~1 minute. The frozen
# broker, the cut connection and PostgreSQL here run in make test-long.
@pytest.mark.parametrize(
    "fault", [fault if fault == "killed" else pytest.param(fault, marks=pytest.mark.long) for fault in FAULTS]
)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.long)], indirect=True)
async def test_every_keys_records_reach_the_topic_in_publishing_order_when_the_broker_fails_under_a_burst(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, fault: str
) -> None:
    topic = f"order-{fault}-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    run = await publish_through_a_fault(
        runtime, owner, kafka_broker, topic, functools.partial(FAULTS[fault], kafka_broker)
    )

    assert sorted({orjson.loads(value)["evseId"] for _key, value in run.records}) == list(range(run.published))
    assert overtaken(run.records) == {}
