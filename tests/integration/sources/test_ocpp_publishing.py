"""The OCPP tap while the database is down: forwarding goes on, events wait in a bounded queue, the rest is counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from chargewire.devtools.csms import DevCsms
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import run_tap
from tests.integration.sources.conftest import free_port
from tests.support.ocpp import ChargePoint, eventually

STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


class UnreachablePublisher:
    """A publish path whose database is down until `recover` is called."""

    max_batch = 1000

    def __init__(self) -> None:
        self.down = True
        self.published: list[dict[str, Any]] = []

    async def publish(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        if self.down:
            raise ConnectionRefusedError("database is down")
        self.published += payloads
        return [f"evt_{index}" for index in range(len(payloads))]


async def test_forwarding_goes_on_and_events_wait_bounded_while_the_database_is_down(
    runtime: Runtime, csms: tuple[DevCsms, int]
) -> None:
    _, csms_port = csms
    port = free_port()
    settings = runtime.settings.model_copy(
        update={
            "ocpp_listen": f"127.0.0.1:{port}",
            "ocpp_upstream": f"ws://127.0.0.1:{csms_port}/ocpp/",
            "ocpp_max_waiting": 5,
        }
    )
    publisher = UnreachablePublisher()
    metrics = CollectorRegistry()
    stop = asyncio.Event()
    tap = asyncio.create_task(run_tap(settings, publisher, runtime.database, stop, metrics))  # type: ignore[arg-type]
    charge_point = await eventually(lambda: _connect(f"ws://127.0.0.1:{port}/ocpp/CP-DB"))

    answers = [await charge_point.call("StatusNotification", STATUS) for _ in range(30)]
    dropped = await eventually(
        lambda: metrics.get_sample_value("chargewire_ocpp_events_dropped_total", {"reason": "queue full"})
    )
    failures = await eventually(lambda: metrics.get_sample_value("chargewire_ocpp_publish_failures_total"))
    publisher.down = False
    await eventually(lambda: publisher.published)
    await charge_point.aclose()
    stop.set()
    await tap

    assert all(answer[0] == 3 for answer in answers)
    assert failures is not None
    assert failures >= 1
    assert dropped > 0
    assert 0 < len(publisher.published) < 31


async def _connect(url: str) -> ChargePoint | None:
    try:
        return await ChargePoint.connect(url)
    except OSError:
        return None
