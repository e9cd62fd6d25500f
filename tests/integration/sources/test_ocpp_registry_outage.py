"""The OCPP tap while its database is unavailable (SQLite locked by another process, PostgreSQL stopped): frames
flow as ever, and the identity registry and events are written once the database is back."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from chargewire.devtools.csms import DevCsms
from chargewire.devtools.postgres import PostgresCluster, throwaway_cluster
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import list_charge_points
from tests.integration.sources.conftest import TapStarter
from tests.support.faults import in_a_thread, postgres_down, sqlite_write_locked
from tests.support.ocpp import ChargePoint, eventually, published

_databases = itertools.count()
# Long enough for the pipeline's backoff (0.5 s doubling) to pass after the database came back.
_RECOVERY_S = 60.0


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own: its tests stop and start it."""
    with throwaway_cluster() as running:
        yield running


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The test's database; on PostgreSQL in the module's own cluster, which the test takes down."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'chargewire.db'}"
    cluster: PostgresCluster = request.getfixturevalue("own_cluster")
    return cluster.create_database(f"outage_{next(_databases)}")


@pytest.fixture
def database_down(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> contextlib.AbstractContextManager[None]:
    """Makes the test's database unavailable for the block: its file write-locked, or its cluster stopped."""
    if backend == "sqlite":
        return sqlite_write_locked(tmp_path / "chargewire.db")
    return postgres_down(request.getfixturevalue("own_cluster"))


async def test_frames_flow_while_the_database_is_down_and_the_registry_is_written_after_it_returns(
    runtime: Runtime,
    csms: tuple[DevCsms, int],
    start_tap: TapStarter,
    tap_metrics: CollectorRegistry,
    database_down: contextlib.AbstractContextManager[None],
) -> None:
    dev_csms, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")

    async with in_a_thread(database_down):
        charge_point = await ChargePoint.connect(f"{tap}CP-OUTAGE")
        boot = await charge_point.call("BootNotification", {"chargePointVendor": "ABB", "chargePointModel": "Terra"})
        start = await charge_point.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": "2025-03-01T10:00:00Z"},
        )
        failures = await eventually(
            lambda: tap_metrics.get_sample_value("chargewire_ocpp_registry_failures_total"), _RECOVERY_S
        )
        forwarded = list(dev_csms.frames_from("CP-OUTAGE"))

    listed = await eventually(lambda: list_charge_points(runtime.database), _RECOVERY_S)
    [started] = await eventually(lambda: published(runtime.database, "SessionStartStopNotification"), _RECOVERY_S)
    [booted] = await published(runtime.database, "BootNotification")
    await charge_point.call(
        "StopTransaction",
        {"transactionId": start[2]["transactionId"], "meterStop": 900, "timestamp": "2025-03-01T11:00:00Z"},
    )
    stopped = await eventually(lambda: _stop_of(runtime), _RECOVERY_S)

    assert (boot[0], start[0]) == (3, 3)
    assert forwarded == charge_point.sent[:2]
    assert failures >= 1
    assert [(record.identity, record.connected) for record in listed] == [("CP-OUTAGE", True)]
    assert booted["chargePointId"] == started["chargePointId"] == listed[0].charge_point_id
    assert stopped == {**stopped, "sessionId": started["sessionId"], "energyConsumed": 800}
    await charge_point.aclose()


async def _stop_of(runtime: Runtime) -> dict[str, object] | None:
    events = await published(runtime.database, "SessionStartStopNotification")
    return next((event for event in events if event["action"] == "stop"), None)
