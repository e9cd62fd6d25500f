"""Events the `chargewire ocpp serve` process counted as published survive a SIGKILL in the middle of traffic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from chargewire.devtools.csms import DevCsms
from chargewire.devtools.postgres import free_port
from chargewire.store.database import create_database
from tests.support.ocpp import ChargePoint, published
from tests.support.processes import CHARGEWIRE, cli

CHARGE_POINTS = 5
_PUBLISHED = re.compile(r"^chargewire_ocpp_events_published_total (\S+)$", re.MULTILINE)


async def _published_count(metrics_url: str) -> int | None:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient() as client:
            found = _PUBLISHED.search((await client.get(metrics_url)).text)
        return int(float(found.group(1))) if found else None
    return None


async def _charge(url: str, identity: str) -> None:
    charge_point = await ChargePoint.connect(f"{url}{identity}")
    await charge_point.call("BootNotification", {"chargePointVendor": "ABB", "chargePointModel": "Terra"})
    for round_number in range(10_000):
        answer = await charge_point.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2025-03-01T10:00:00Z"},
        )
        transaction_id = answer[2]["transactionId"]
        meter = {"timestamp": "2025-03-01T10:10:00Z", "sampledValue": [{"value": str(round_number)}]}
        await charge_point.call(
            "MeterValues", {"connectorId": 1, "transactionId": transaction_id, "meterValue": [meter]}
        )
        await charge_point.call(
            "StopTransaction", {"transactionId": transaction_id, "meterStop": 100, "timestamp": "2025-03-01T11:00:00Z"}
        )


async def test_events_the_tap_published_survive_a_sigkill_of_the_tap(
    migrated_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    dev_csms = DevCsms(record=False)
    async with await dev_csms.start() as csms_server:
        port = free_port()
        env = {
            **os.environ,
            **migrated_env,
            "CHARGEWIRE_OCPP_LISTEN": f"127.0.0.1:{port}",
            "CHARGEWIRE_OCPP_UPSTREAM": f"ws://127.0.0.1:{csms_server.sockets[0].getsockname()[1]}/ocpp/",
        }
        with (tmp_path / "tap.log").open("wb") as log:
            # Popen returns at once; the test never waits on the process while the loop has work.
            tap = subprocess.Popen([CHARGEWIRE, "ocpp", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        try:
            await _wait_published(metrics_url, 0)
            traffic = [
                asyncio.create_task(_charge(f"ws://127.0.0.1:{port}/ocpp/", f"CP-{n}")) for n in range(CHARGE_POINTS)
            ]
            counted = await _wait_published(metrics_url, 300)
            tap.send_signal(signal.SIGKILL)
            tap.wait(timeout=10)
            await asyncio.gather(*traffic, return_exceptions=True)
        finally:
            if tap.poll() is None:
                tap.kill()
                tap.wait()

    database = create_database(database_url)
    try:
        stored = await published(database)
    finally:
        await database.aclose()
    listed = cli(migrated_env, "ocpp", "charge-points").stdout.splitlines()

    assert len(stored) >= counted
    assert listed[0].split()[:4] == ["IDENTITY", "ID", "VERSION", "STATE"]
    assert sorted(line.split()[0] for line in listed[1:]) == [f"CP-{n}" for n in range(CHARGE_POINTS)]


async def _wait_published(metrics_url: str, minimum: int) -> int:
    """Wait until the tap answers and has published at least `minimum` events; returns its count."""
    for _ in range(600):
        count = await _published_count(metrics_url)
        if count is not None and count >= minimum:
            return count
        await asyncio.sleep(0.1)
    raise AssertionError(f"the tap did not publish {minimum} events within a minute")
