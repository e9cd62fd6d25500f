"""An example webhook receiver: FastAPI with the chargewire dependency, recording every verified event as
one JSON line (the receiver kit's end-to-end test reads them).

    CHARGEWIRE_SIGNING_SECRETS=whsec_... CHARGEWIRE_API_TOKEN=cw_... PORT=3000 python fastapi_receiver.py
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, Request

from chargewire.receiver import EVENT_TYPES, Event, UnknownEvent, Verifier, event_name
from chargewire.receiver.fastapi import webhook_event

verifier = Verifier(
    signing_secrets=os.environ.get("CHARGEWIRE_SIGNING_SECRETS", "").split(),
    api_token=os.environ.get("CHARGEWIRE_API_TOKEN") or None,
)
ChargewireEvent = Annotated[Event, Depends(webhook_event(verifier))]
app = FastAPI()


@app.post("/hooks", status_code=204)
def hooks(event: ChargewireEvent, request: Request) -> None:
    """Receive one notification; answer fast, and leave slow work to a queue."""
    if isinstance(event, UnknownEvent):
        print(f"an event this version does not know: {event.notification}")
        type_name = "UnknownEvent"
    else:
        if event["notification"] == "SessionStartStopNotification":
            print(f"session {event['sessionId']} stopped at meter {event['meterStop']}")  # typed keys
        type_name = EVENT_TYPES[event["notification"]].__name__
    record(event_name(event), type_name, request.headers.get("webhook-id"))


def record(notification: str, type_name: str, webhook_id: str | None) -> None:
    """Append what arrived to RECEIVER_RECORD_FILE, when set."""
    record_file = os.environ.get("RECEIVER_RECORD_FILE")
    if record_file:
        line = {"notification": notification, "type": type_name, "webhookId": webhook_id}
        with open(record_file, "a", encoding="utf-8") as records:
            records.write(json.dumps(line) + "\n")


@app.get("/health")
async def health() -> dict[str, bool]:
    """Ready to receive."""
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")), log_level="warning")
