"""WebSocket connections whose data frames go straight to a peer connection, frame by frame.

The `websockets` library assembles every message for `recv()` and takes it apart again in `send()`: futures,
locks and a decode and encode per message and side, most of a relaying tap's CPU per frame. These
connections hand each data frame, as parsed, to the relay instead, which sends it on with the same opcode,
payload and FIN bit. Handshakes, pings, close handshakes, masking and the size limit stay the library's.
Frames that arrive before the relay starts (the CSMS may speak while the charge point's handshake is still
under way) wait in `early`. When a peer cannot take more, reading from this side pauses until it can.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidState
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event


class _Relaying(Connection):
    """The part both ends share: data frames to `forward` (or `early`), flow control towards `peer`."""

    forward: Callable[[Frame], None] | None
    early: list[Frame]
    peer: Connection | None

    def _start_relaying(self) -> None:
        self.forward = None
        self.early = []
        self.peer = None

    def process_event(self, event: Event) -> None:
        """Hand data frames to the relay; everything else (handshake, pongs) as the library does."""
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            if self.forward is None:
                self.early.append(event)
            else:
                self.forward(event)
            return
        super().process_event(event)

    def pause_writing(self) -> None:
        """The peer sends faster than this side takes: stop reading from it."""
        super().pause_writing()
        if self.peer is not None:
            with contextlib.suppress(RuntimeError):
                self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        """This side takes data again: read from the peer again."""
        super().resume_writing()
        if self.peer is not None:
            with contextlib.suppress(RuntimeError):
                self.peer.transport.resume_reading()


class RelayServerConnection(_Relaying, ServerConnection):
    """A charge point's connection to the tap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_relaying()


class RelayClientConnection(_Relaying, ClientConnection):
    """The tap's connection to the CSMS for one charge point."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_relaying()


def send_frame(target: Connection, frame: Frame) -> bool:
    """Send `frame`'s payload on `target` with its opcode and FIN bit; False when `target` is closing."""
    protocol = target.protocol
    try:
        if frame.opcode is Opcode.TEXT:
            protocol.send_text(frame.data, frame.fin)
        elif frame.opcode is Opcode.BINARY:
            protocol.send_binary(frame.data, frame.fin)
        else:
            protocol.send_continuation(frame.data, frame.fin)
    except InvalidState:
        return False
    target.send_data()
    return True
