"""The HTTP server behind `chargewire serve`: uvicorn without signal handlers of its own, ticking once a second."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

# After a stop signal, requests under way get this long to finish before their connections are closed.
_GRACEFUL_SHUTDOWN_S = 5
# The Date header has a resolution of one second; uvicorn's own loop wakes ten times a second for it.
_TICK_S = 1.0


class ApiServer(uvicorn.Server):
    """uvicorn's server without signal handlers of its own, ticking once a second and stopping when told at once.

    uvicorn's handlers catch SIGINT and SIGTERM while it serves and raise them again once it has stopped:
    SIGTERM then killed the process (exit 143) before the worker had recorded its attempts, and SIGINT
    became a KeyboardInterrupt inside the worker's shutdown. Ours stop the API and the worker together.

    uvicorn's main loop wakes every 0.1 s to refresh the Date header once a second and to look at `should_exit`:
    a tenth of an idle `serve`'s loop wake-ups. Here it wakes once a second for the header, and setting
    `should_exit` wakes it at once, so a stop is as prompt as before.
    """

    tick_s = _TICK_S

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit_asked = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        """Whether the server was asked to stop serving."""
        return self._exit_asked.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit_asked.set()
        else:
            self._exit_asked.clear()

    async def main_loop(self) -> None:
        """Refresh the Date header every `tick_s` and return as soon as `should_exit` is set."""
        while not await self.on_tick(0):  # uvicorn refreshes the header on ticks whose counter is a multiple of 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_asked.wait(), self.tick_s)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """serve's options: no access log, no lifespan, 5 s to finish, and the publish path's shortcut (`api.ingress`)."""
    from chargewire.api.ingress import IngressProtocol

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=IngressProtocol,
        log_level="info",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )


def api_server(app: ASGIApp, host: str, port: int) -> ApiServer:
    """The server of `app` on `host`:`port` with serve's options."""
    return ApiServer(server_config(app, host, port))
