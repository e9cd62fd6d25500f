"""`chargewire demo` (what `make demo` runs): OCPP charge points through the tap reach the sample receiver."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx

from chargewire.devtools.postgres import free_port
from tests.support.processes import cli, signal_and_wait, start_logged

TOKEN = re.compile(r"API token\s+(\S+)")


def wait_for_token(log: Path, timeout_s: float = 60) -> str:
    """The admin token the demo prints in its banner, once it is serving."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = TOKEN.search(log.read_text())
        if found:
            return found[1]
        time.sleep(0.1)
    raise AssertionError(f"the demo printed no token: {log.read_text()}")


def wait_delivered(api: httpx.Client, notification: str, timeout_s: float = 60) -> list[dict[str, object]]:
    """Deliveries of `notification` that reached the sample receiver."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = api.get("/api/v1/deliveries", params={"status": "delivered", "notification": notification})
        if answer.status_code == 200 and answer.json()["data"]:
            return list(answer.json()["data"])
        time.sleep(0.2)
    raise AssertionError(f"no {notification} was delivered")


def test_demo_delivers_events_of_simulated_charge_points_that_only_the_ocpp_tap_publishes(tmp_path: Path) -> None:
    env = {"CHARGEWIRE_DATA_DIR": str(tmp_path / "data"), "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml")}
    port = free_port()
    log = tmp_path / "demo.log"
    arguments = ["--rate=5", "--ocpp-charge-points=4", "--meter-interval=0.2", f"--port={port}"]
    demo = start_logged(env, log, "demo", *arguments)
    try:
        token = wait_for_token(log)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as api:
            # Only the tap publishes these: the API's simulated network sends no authorization events.
            wait_delivered(api, "authorization.changed")
            wait_delivered(api, "SessionMeterValuesNotification")
        listed = cli(env, "ocpp", "charge-points").stdout
        assert signal_and_wait(demo, signal.SIGINT) == 0
    finally:
        if demo.poll() is None:
            signal_and_wait(demo, signal.SIGKILL)

    output = log.read_text()
    assert "OCPP tap     ws://127.0.0.1:" in output
    assert "Traceback" not in output
    for number in range(1, 5):
        assert re.search(rf"^DEMO-000{number}\s+\d+\s+ocpp(1\.6|2\.0\.1)\s+connected", listed, re.M), listed
