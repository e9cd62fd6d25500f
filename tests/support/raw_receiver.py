"""A loopback HTTP receiver that answers with raw bytes: what no well-behaved server library would send."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

# What the receiver writes after a `Endless` answer's head, again and again until the client hangs up.
ENDLESS_CHUNK = b"1000\r\n" + (b"\x00\xff garbage " * 400)[:4096] + b"\r\n"


class Endless(bytes):
    """An answer head whose chunked body never ends."""


class RawReceiver:
    """Answers each POST on a path with the bytes given for that path, then closes the connection."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self._answers: dict[str, bytes] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def on(self, path: str, answer: bytes) -> str:
        """Answer POSTs to `path` with `answer` (an `Endless` head streams a body forever); returns the URL."""
        self._answers[path] = answer
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and drop open connections."""
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = next(
                (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0
            )
            await reader.readexactly(length)
            self.posts[path] += 1
            answer = self._answers.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            writer.write(answer)
            while isinstance(answer, Endless):
                await writer.drain()
                writer.write(ENDLESS_CHUNK)
            await writer.drain()
        self._writers.discard(writer)
        writer.close()
