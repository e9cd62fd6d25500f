"""The short chaos run, part of `make test`: a real `serve` and workers on each store, steady publishing, one of
each kind of fault in turn, and the invariants checked on what the run left (`make chaos` runs the long one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewire.devtools.kafka_broker import KafkaBroker
from tests.chaos.report import table
from tests.chaos.scenario import SHORT, run_store


@pytest.mark.timeout(280)
def test_every_accepted_event_is_delivered_or_visibly_failed_when_faults_strike_one_after_another(
    backend: str, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    result = run_store(backend, SHORT, kafka_broker, tmp_path)
    print(table(result))
    assert result.violations == [], table(result)
