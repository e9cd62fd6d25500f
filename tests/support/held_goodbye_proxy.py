"""A loopback TCP proxy to a server that can hold back the end of the server's side of each connection.

PostgreSQL, restarting, sends each idle client a FATAL message and then closes the connection; a client that
is busy may send its next statement after reading the message and before reading the end. The proxy makes that
window as long as a test needs: while `holding`, a connection the server closed stays open towards the client
(with everything the server sent passed on) until `release`.
"""

from __future__ import annotations

import asyncio
import contextlib


class HeldGoodbyeProxy:
    """Forwards each connection to `upstream_port` on loopback; see the module docstring."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.held = 0
        self.connections = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        """From now on, keep connections the server closes open towards the client until `release`."""
        self._released.clear()

    def release(self) -> None:
        """Close towards the client every connection the server closed meanwhile, and hold no more."""
        self._released.set()

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        self.release()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            except OSError:
                return  # the server is down: the client sees its connection end at once, as if refused
            try:
                await asyncio.gather(
                    self._pump(client_reader, server_writer, hold=False),
                    self._pump(server_reader, client_writer, hold=True),
                )
            finally:
                server_writer.close()
        finally:
            client_writer.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if hold and not self._released.is_set():
            self.held += 1
            await self._released.wait()
        writer.close()
