"""The benchmarks' webhook receiver: its own process, a raw asyncio protocol (HTTP/1.1 keep-alive).

It answers 202 to every POST, counts requests and distinct `webhook-id`s (duplicates are the difference), and
keeps the arrival time (monotonic clock, shared by every process on the machine) of each body that carries a
latency tag: the first JSON string value starting with `lat-`. Control endpoints: `GET /_stats`,
`GET /_arrivals` and `POST /_reset`. Run alone with `python -m bench.receiver PORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import orjson

from chargewire.devtools.postgres import free_port
from tests.support.processes import stop_process

REPO = Path(__file__).resolve().parent.parent

_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
_LATENCY_TAG = b'"lat-'


class _Counts:
    """What the receiver saw since the last reset."""

    def __init__(self) -> None:
        self.requests = 0
        self.first = 0.0
        self.last = 0.0
        self.webhook_ids: set[bytes] = set()
        self.arrivals: dict[bytes, float] = {}
        self.repeated_tags = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "unique": len(self.webhook_ids),
            "tagged": len(self.arrivals),
            "repeated_tags": self.repeated_tags,
            "first": self.first,
            "last": self.last,
            "now": time.monotonic(),
        }


class _ReceiverProtocol(asyncio.Protocol):
    def __init__(self, state: list[_Counts]) -> None:
        self._state = state
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport does not subclass it

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            length = int(_header(head, b"\r\ncontent-length:") or 0)
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            assert self._transport is not None
            self._transport.write(self._answer(head, body))

    def _answer(self, head: bytes, body: bytes) -> bytes:
        counts = self._state[0]
        if head.startswith(b"get /_stats"):
            return _json_answer(counts.stats())
        if head.startswith(b"get /_arrivals"):
            return _json_answer({key.decode(): at for key, at in counts.arrivals.items()})
        if head.startswith(b"post /_reset"):
            self._state[0] = _Counts()
            return _json_answer({})
        now = time.monotonic()
        counts.requests += 1
        if not counts.first:
            counts.first = now
        counts.last = now
        webhook_id = _header(head, b"\r\nwebhook-id:")
        if webhook_id:
            counts.webhook_ids.add(webhook_id)
        at = body.find(_LATENCY_TAG)
        if at >= 0:
            tag = body[at + 1 : body.find(b'"', at + 1)]
            if tag in counts.arrivals:
                counts.repeated_tags += 1
            else:
                counts.arrivals[tag] = now
        return _ACCEPTED


def _header(head: bytes, name: bytes) -> bytes | None:
    at = head.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def _json_answer(data: object) -> bytes:
    body = orjson.dumps(data)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def serve_receiver(port: int) -> None:
    """Run the receiver on 127.0.0.1:`port` until SIGTERM (the body of `python -m bench.receiver PORT`)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        state = [_Counts()]
        server = await loop.create_server(lambda: _ReceiverProtocol(state), "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with server:
            await stop.wait()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


class Receiver:
    """The bench's handle on a receiver process: its URL, pid, counters."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self._control = httpx.Client(base_url=self.base, timeout=30)

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self._control.get("/_stats").json()
        return data

    def arrivals(self) -> dict[str, float]:
        data: dict[str, float] = self._control.get("/_arrivals").json()
        return data

    def reset(self) -> None:
        self._control.post("/_reset")

    def close(self) -> None:
        self._control.close()


@contextlib.contextmanager
def running_receiver(command: Sequence[str] = (sys.executable, "-m", "bench.receiver")) -> Iterator[Receiver]:
    """A receiver process (`command PORT`, this module's by default) on a free port, stopped when the block ends.

    Another command must answer the same control endpoints (`bench/loadpeers` does).
    """
    port = free_port()
    process = subprocess.Popen([*command, str(port)], cwd=REPO)
    receiver = Receiver(port, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                receiver.stats()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield receiver
    finally:
        receiver.close()
        stop_process(process)


if __name__ == "__main__":
    serve_receiver(int(sys.argv[1]))
