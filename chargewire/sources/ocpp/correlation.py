"""Matching each CALL with its answer, per connection and direction.

Unique ids are unique only per connection and per direction, so each link keeps one table of open calls
per direction. A result whose id matches no open call (a duplicate, or one answered before the tap
started) is ignored. The table is bounded: OCPP allows one open call per direction, and a peer that
never answers must not grow memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from chargewire.sources.ocpp.frames import Call, CallError, CallResult, Frame

MAX_OPEN_CALLS = 32


class Direction(StrEnum):
    """Who sent a frame."""

    FROM_CHARGE_POINT = "charge_point"
    FROM_CSMS = "csms"


@dataclass(frozen=True, slots=True)
class Exchange:
    """A call and how it was answered: `result` is None when the answer was a CALLERROR."""

    direction: Direction
    call: Call
    result: CallResult | None
    error_code: str | None = None


class Correlator:
    """The open calls of one link, in both directions."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[Direction, OrderedDict[str, Call]] = {
            Direction.FROM_CHARGE_POINT: OrderedDict(),
            Direction.FROM_CSMS: OrderedDict(),
        }

    def observe(self, sender: Direction, frame: Frame) -> Exchange | None:
        """Record a call, or return the exchange that `frame` completes (None when it completes none)."""
        if isinstance(frame, Call):
            calls = self._open[sender]
            calls[frame.unique_id] = frame
            if len(calls) > MAX_OPEN_CALLS:
                calls.popitem(last=False)
            return None
        if not isinstance(frame, CallResult | CallError):
            return None
        # An answer travels against its call: a CSMS answers the charge point's calls.
        caller = Direction.FROM_CSMS if sender is Direction.FROM_CHARGE_POINT else Direction.FROM_CHARGE_POINT
        call = self._open[caller].pop(frame.unique_id, None)
        if call is None:
            return None
        if isinstance(frame, CallResult):
            return Exchange(caller, call, frame)
        return Exchange(caller, call, None, frame.code)
