"""`chargewire simulate` → `chargewire ocpp serve` → `chargewire dev csms`, each a process of its own.

On the embedded SQLite default only: what is proven here is the three commands working together; the tap's
publishing on both stores is proven in process by tests/integration/sources.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any

from chargewire.catalog import validate
from chargewire.devtools.postgres import free_port
from chargewire.store.database import create_database
from tests.support.ocpp import published
from tests.support.processes import cli, signal_and_wait, start_logged


def wait_listening(port: int, log: Path, timeout_s: float = 60) -> None:
    """Wait until something accepts TCP connections on loopback `port`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on {port}: {log.read_text()}")


async def stored_events(database_url: str) -> list[dict[str, Any]]:
    database = create_database(database_url)
    try:
        return await published(database)
    finally:
        await database.aclose()


def test_simulate_connects_both_versions_through_a_tap_process_whose_events_validate(tmp_path: Path) -> None:
    cli_env = {"CHARGEWIRE_DATA_DIR": str(tmp_path / "data"), "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml")}
    csms_port, tap_port = free_port(), free_port()
    tap_env = {
        **cli_env,
        "CHARGEWIRE_OCPP_LISTEN": f"127.0.0.1:{tap_port}",
        "CHARGEWIRE_OCPP_UPSTREAM": f"ws://127.0.0.1:{csms_port}/ocpp/",
    }
    csms = start_logged(cli_env, tmp_path / "csms.log", "dev", "csms", "--port", str(csms_port))
    tap = start_logged(tap_env, tmp_path / "tap.log", "ocpp", "serve")
    try:
        wait_listening(csms_port, tmp_path / "csms.log")
        wait_listening(tap_port, tmp_path / "tap.log")
        simulated = cli(
            cli_env,
            "simulate",
            f"--url=ws://127.0.0.1:{tap_port}/ocpp/",
            "--charge-points=4",
            "--meter-interval=0.1",
            "--speedup=600",
            "--duration=3",
        )
        assert signal_and_wait(tap, signal.SIGTERM) == 0
    finally:
        for process in (tap, csms):
            if process.poll() is None:
                signal_and_wait(process, signal.SIGTERM)

    events = asyncio.run(stored_events(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chargewire.db'}"))
    names = {validate(payload) for payload in events}
    boots = [event for event in events if event["notification"] == "BootNotification"]
    assert len(boots) == 4
    assert sorted(bool(boot["bootNotification"]["reason"]) for boot in boots) == [False, False, True, True]
    assert {"SessionStartStopNotification", "SessionMeterValuesNotification", "SessionUpdateNotification"} <= names
    assert "sessions started" in simulated.stderr
    charge_points = cli(cli_env, "ocpp", "charge-points").stdout
    assert all(f"SIM-000{n}" in charge_points for n in range(1, 5))


def test_simulate_refuses_an_unknown_ocpp_version_naming_it() -> None:
    result = cli({}, "simulate", "--url=ws://127.0.0.1:9/ocpp/", "--versions=1.6,1.5", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: OCPP versions must be among 1.6, 2.0.1, not ['1.5'].")
