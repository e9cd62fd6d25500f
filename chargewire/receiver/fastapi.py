"""FastAPI integration: a dependency that verifies the request and hands the endpoint its typed event.

    verifier = Verifier(signing_secrets=["whsec_..."], api_token="cw_...")
    ChargewireEvent = Annotated[Event, Depends(webhook_event(verifier))]

    @app.post("/hooks", status_code=204)
    async def hooks(event: ChargewireEvent) -> None: ...

A bad signature gets 401 with the reason, a body that is no event 400; the endpoint never runs for them.
Only this module imports FastAPI, so `import chargewire.receiver` stays free of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from chargewire.receiver.event import Event, MalformedEvent
from chargewire.receiver.verifier import Verifier
from chargewire.receiver.verify import InvalidSignature


def webhook_event(verifier: Verifier) -> Callable[[Request], Awaitable[Event]]:
    """A FastAPI dependency returning the verified, parsed event of the request."""

    async def dependency(request: Request) -> Event:
        body = await request.body()
        try:
            return verifier.verify_event(body, request.headers)
        except InvalidSignature as refused:
            raise HTTPException(status_code=401, detail=str(refused.reason)) from refused
        except MalformedEvent as malformed:
            raise HTTPException(status_code=400, detail=str(malformed)) from malformed

    return dependency
