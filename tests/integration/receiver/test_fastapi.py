"""The FastAPI dependency hands an endpoint the verified, typed event and keeps refused requests out of it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI

from chargewire.receiver import Event, UnknownEvent, Verifier, event_name
from chargewire.receiver.fastapi import webhook_event

VECTORS = json.loads((Path(__file__).parents[3] / "clients" / "test-vectors.json").read_text(encoding="utf-8"))
VALID = next(c for c in VECTORS["cases"] if c["name"] == "standard webhooks valid")


class _FixedClockVerifier(Verifier):
    """The vector's signature was made at a fixed time, so verification happens at that time."""

    def verify(self, body: bytes, headers: Any, now: float | None = None) -> None:
        super().verify(body, headers, VALID["now"])


# At module level: FastAPI resolves the endpoint's (postponed) annotations in the module's namespace.
VerifiedEvent = Annotated[Event, Depends(webhook_event(_FixedClockVerifier(signing_secrets=VALID["secrets"])))]


def _app(seen: list[Event]) -> FastAPI:
    app = FastAPI()

    @app.post("/hooks", status_code=204)
    async def hooks(event: VerifiedEvent) -> None:
        seen.append(event)

    return app


async def _post(app: FastAPI, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
        return await client.post("/hooks", content=body, headers=VALID["headers"])


async def test_fastapi_endpoint_receives_the_typed_event_when_the_signature_verifies() -> None:
    seen: list[Event] = []
    response = await _post(_app(seen), base64.b64decode(VALID["body_base64"]))
    assert response.status_code == 204
    assert [event_name(e) for e in seen] == ["SessionStartStopNotification"]
    assert not isinstance(seen[0], UnknownEvent)


async def test_fastapi_endpoint_is_not_reached_when_the_body_was_changed() -> None:
    seen: list[Event] = []
    response = await _post(_app(seen), base64.b64decode(VALID["body_base64"]) + b" ")
    assert response.status_code == 401
    assert response.json() == {"detail": "signature_mismatch"}
    assert seen == []
