"""`chargewire serve` with the OCPP tap configured: charge points relayed by it, listed in the back office."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from chargewire.devtools.postgres import free_port
from tests.conftest import bearer
from tests.integration.backoffice.conftest import Backoffice, shoot, sign_in
from tests.support.processes import CHARGEWIRE, stop_process
from tests.support.receiver import always

CSMS_PORT = free_port()
TAP_PORT = free_port()
SERVER_SETTINGS = {
    "CHARGEWIRE_OCPP_LISTEN": f"127.0.0.1:{TAP_PORT}",
    "CHARGEWIRE_OCPP_UPSTREAM": f"ws://127.0.0.1:{CSMS_PORT}/ocpp/",
}


@pytest.fixture(scope="module", autouse=True)
def dev_csms() -> Iterator[None]:
    """`chargewire dev csms` as the tap's upstream, started before the server."""
    process = subprocess.Popen(
        [CHARGEWIRE, "dev", "csms", "--port", str(CSMS_PORT)],
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield
    stop_process(process)


def boot(identity: str, subprotocol: str) -> None:
    """Connect through the tap, boot as a 1.6 or 2.0.1 charge point, and hang up."""
    payloads = {
        "ocpp1.6": {"chargePointVendor": "ABB", "chargePointModel": "Terra"},
        "ocpp2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "S", "vendorName": "Kempower"}},
    }
    with connect(f"ws://127.0.0.1:{TAP_PORT}/ocpp/{identity}", subprotocols=[subprotocol], open_timeout=30) as socket:
        socket.send(json.dumps([2, "1", "BootNotification", payloads[subprotocol]]))
        assert json.loads(socket.recv(timeout=10))[0] == 3


def test_serve_relays_charge_points_through_the_tap_delivers_their_events_and_lists_them(
    page: Page, backoffice: Backoffice
) -> None:
    backoffice.receiver.on("/hooks/boots", always(202))
    backoffice.api.post(
        "/public-api/notifications/v2.0",
        headers=bearer(backoffice.owner_token),
        json={
            "via": "webhook",
            "notifications": ["BootNotification"],
            "webhook": {"callbackUrl": backoffice.receiver.url("/hooks/boots")},
        },
    ).raise_for_status()
    boot(f"CP-{backoffice.backend}-16", "ocpp1.6")
    boot(f"CP-{backoffice.backend}-201", "ocpp2.0.1")

    sign_in(page)
    page.get_by_role("link", name="Charge points").click()
    expect(page.get_by_role("heading", name="Charge points")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=f"CP-{backoffice.backend}-201")
    expect(row).to_contain_text("ocpp2.0.1")
    expect(row).to_contain_text("disconnected")
    expect(page.get_by_role("row").filter(has_text=f"CP-{backoffice.backend}-16")).to_contain_text("ocpp1.6")
    shoot(page, backoffice, "charge-points")

    deadline = time.monotonic() + 30
    while len(backoffice.receiver.on_path("/hooks/boots")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    vendors = {
        json.loads(hook.body)["bootNotification"]["vendor"] for hook in backoffice.receiver.on_path("/hooks/boots")
    }
    assert vendors == {"ABB", "Kempower"}
