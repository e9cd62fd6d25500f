"""`chargewire listen` receives through a temporary subscription, verifies, prints, forwards, and cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from tests.support.processes import CHARGEWIRE, running_server
from tests.support.receiver_kit import prepared_service
from tests.support.threaded_receiver import receiver_in_thread

EVENT = "NetworkStatusNotification"


def _wait_for_output(log: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        assert process.poll() is None or text in log.read_text(), f"listen exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in: {log.read_text()}"
        time.sleep(0.1)
    return log.read_text()


def test_listen_verifies_prints_and_forwards_a_delivery_then_removes_its_subscription_on_ctrl_c(
    tmp_path: Path,
) -> None:
    env, token = prepared_service(tmp_path)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "listen.log"
    with (
        receiver_in_thread() as app,
        running_server(env, port),
        httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as api,
    ):
        forward_to = app.url("/hooks")
        with log.open("wb") as output:
            listen = subprocess.Popen(
                [CHARGEWIRE, "listen", "--events", EVENT, "--forward-to", forward_to, "--api-url", api_url],
                env={**os.environ, **env, "CHARGEWIRE_TOKEN": token},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_output(log, "Ready.", listen)
            assert len(api.get("/public-api/notifications/v2.0").json()["data"]) == 1
            example = load_event_types()[EVENT].example
            assert api.post("/api/v1/events", json=example).status_code == 202
            _wait_for_output(log, "forwarded:", listen)
            listener_url = log.read_text().split("Listening on ", 1)[1].split()[0]
            httpx.post(listener_url, content=b'{"notification": "forged"}', headers={"X-Signature": "0" * 64})
            printed = _wait_for_output(log, "refused: missing_header", listen)
        finally:
            listen.send_signal(signal.SIGINT)
            assert listen.wait(30) == 0, log.read_text()

        assert f"✔ {EVENT}" in printed
        assert "signature verified" in printed
        assert "→ forwarded: 202" in printed
        forwarded = app.on_path("/hooks")
        assert len(forwarded) == 2  # the forged request too: the app must do its own verification
        assert json.loads(forwarded[0].body) == example
        assert forwarded[0].headers["webhook-id"] in printed
        assert "webhook-signature" in forwarded[0].headers
        assert "Removed subscription" in log.read_text()
        assert api.get("/public-api/notifications/v2.0").json()["data"] == []
