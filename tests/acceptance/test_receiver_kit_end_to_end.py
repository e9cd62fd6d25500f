"""A real chargewire delivers every catalog example to the example receiver of each language of the receiver
kit, which verifies both signatures, parses the typed event and records it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from chargewire.devtools.receiver_kit.model import event_struct_name
from tests.support.processes import running_server, stop_process
from tests.support.receiver_kit import LANGUAGES, build_receiver, prepared_service

# Operational events are chargewire's own and cannot be published; every other catalog event is.
PUBLISHABLE = {name: t.example for name, t in load_event_types().items() if not t.operational}


@contextlib.contextmanager
def receiver_process(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    """The example receiver, running until the block ends; waits until it answers its health check."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"receiver exited: {log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"receiver did not start: {log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield
    finally:
        stop_process(process, timeout_s=10)


def _records(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@dataclass(frozen=True)
class Service:
    """The module's `chargewire serve` and an admin token there."""

    port: int
    token: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One `serve` for every language: each test subscribes its own receiver and deletes that subscription after."""
    env, token = prepared_service(tmp_path_factory.mktemp("kit-service"))
    port = free_port()
    with running_server(env, port):
        yield Service(port, token)


@pytest.mark.parametrize("language", LANGUAGES)
def test_receiver_in_each_language_verifies_and_parses_every_catalog_example(
    language: str, service: Service, tmp_path: Path
) -> None:
    command = build_receiver(language, tmp_path)
    receiver_port = free_port()
    records = tmp_path / "records.jsonl"
    headers = {"Authorization": f"Bearer {service.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{service.port}", headers=headers) as api:
        body = {
            "via": "webhook",
            "notifications": list(PUBLISHABLE),
            "webhook": {"callbackUrl": f"http://127.0.0.1:{receiver_port}/hooks"},
        }
        created = api.post("/public-api/notifications/v2.0", json=body)
        assert created.status_code == 201, created.text
        subscription = f"/public-api/notifications/v2.0/{created.json()['data']['id']}"
        receiver_env = {
            "PORT": str(receiver_port),
            "CHARGEWIRE_SIGNING_SECRETS": created.json()["data"]["signingSecret"],
            "CHARGEWIRE_API_TOKEN": service.token,
            "RECEIVER_RECORD_FILE": str(records),
        }
        with receiver_process(command, receiver_env, receiver_port, tmp_path / "receiver.log"):
            published = api.post("/api/v1/events", json=list(PUBLISHABLE.values()), timeout=60)
            assert published.status_code == 202, published.text
            deadline = time.monotonic() + 120
            while len(_records(records)) < len(PUBLISHABLE):
                assert time.monotonic() < deadline, f"only {len(_records(records))} of {len(PUBLISHABLE)} arrived"
                time.sleep(0.2)
        # The next language's events go to its own receiver only.
        assert api.delete(subscription).status_code == 204

    received = {r["notification"]: r["type"] for r in _records(records)}
    # TypeScript's interfaces vanish at run time, so its receiver can only say the name was a known one.
    expected = {name: "KnownEvent" if language == "typescript" else event_struct_name(name) for name in PUBLISHABLE}
    assert received == expected
    assert len({r["webhookId"] for r in _records(records)}) == len(PUBLISHABLE)
