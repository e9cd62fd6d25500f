"""Real services shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargewire.devtools.kafka_broker import KafkaBroker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real single-node Kafka broker for the run (fails loudly when java or the jars are missing)."""
    with KafkaBroker() as running:
        yield running
