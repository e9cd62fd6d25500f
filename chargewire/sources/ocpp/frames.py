"""OCPP-J frames as the tap reads them: a CALL, its CALLRESULT or CALLERROR, or something it only forwards.

OCPP-J frames are JSON arrays whose first element is the message type: 2 CALL `[2, id, action, payload]`,
3 CALLRESULT `[3, id, payload]`, 4 CALLERROR `[4, id, code, description, details]`. OCPP 2.1 adds 5
CALLRESULTERROR and 6 SEND; the tap forwards those (and anything else) without deriving events from them.
Parsing never raises: text that is not an OCPP-J frame becomes a `Malformed` value naming the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson


class MessageType(IntEnum):
    """The first element of an OCPP-J frame."""

    CALL = 2
    CALL_RESULT = 3
    CALL_ERROR = 4
    CALL_RESULT_ERROR = 5
    SEND = 6


@dataclass(frozen=True, slots=True)
class Call:
    """A request: the action and its payload, answered by a result or an error with the same unique id."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """The successful answer to the call with the same unique id."""

    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """The error answer to the call with the same unique id."""

    unique_id: str
    code: str


@dataclass(frozen=True, slots=True)
class Other:
    """A well-formed frame of a type the tap forwards without reading (OCPP 2.1 SEND, CALLRESULTERROR)."""

    message_type: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """Text that is not an OCPP-J frame; `reason` is a short label for metrics and logs."""

    reason: str


Frame = Call | CallResult | CallError | Other | Malformed


def parse_frame(text: str | bytes) -> Frame:
    """The frame a text message (as str or its UTF-8 bytes) holds, or Malformed with the reason it is not one."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Malformed("not json")
    if not isinstance(message, list) or len(message) < 3 or not isinstance(message[1], str):
        return Malformed("not an ocpp-j frame")
    message_type = message[0]
    if message_type == MessageType.CALL:
        return _call(message)
    if message_type == MessageType.CALL_RESULT:
        payload = message[2]
        return CallResult(message[1], payload) if isinstance(payload, dict) else Malformed("payload not an object")
    if message_type == MessageType.CALL_ERROR:
        return CallError(message[1], str(message[2]))
    if isinstance(message_type, int) and not isinstance(message_type, bool):
        return Other(message_type)
    return Malformed("unknown message type")


def _call(message: list[Any]) -> Frame:
    if len(message) != 4 or not isinstance(message[2], str):
        return Malformed("call without action")
    if not isinstance(message[3], dict):
        return Malformed("payload not an object")
    return Call(message[1], message[2], message[3])
