"""The processes behind `chargewire serve` (the API and a delivery worker in one), `worker` and `ocpp serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

import uvicorn

from chargewire.cli.common import freeze_startup_objects
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import run_tap
from chargewire.web import create_app

logger = logging.getLogger(__name__)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# After a stop signal, requests under way get this long to finish before their connections are closed.
_GRACEFUL_SHUTDOWN_S = 5
# The Date header has a resolution of one second; uvicorn's own loop wakes ten times a second for it.
_TICK_S = 1.0


class _Server(uvicorn.Server):
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


def _on_stop_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Call `stop` on SIGINT and SIGTERM; returns what removes the handlers again."""
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop)

    def remove() -> None:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)

    return remove


async def serve_until_stopped(settings: Settings, host: str, port: int, with_worker: bool) -> None:
    """Open the runtime and serve the API (and deliver, unless told not to) until SIGINT or SIGTERM.

    The first of its parts (API, worker, OCPP tap) to end ends the others: a worker that failed for good stops
    the API at once, and the process ends non-zero with the reason (TaskFailed), so whatever runs it starts it
    again.
    """
    async with await Runtime.open(settings) as runtime:
        config = uvicorn.Config(
            create_app(runtime),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        server = _Server(config)
        freeze_startup_objects()
        stop = asyncio.Event()

        def stop_all() -> None:
            if stop.is_set():
                server.force_exit = True  # a second signal: stop waiting for open connections
            stop.set()
            server.should_exit = True

        remove_handlers = _on_stop_signals(stop_all)
        sampler = asyncio.create_task(runtime.overview.sample_queue(stop), name="queue-sampler")
        parts = [asyncio.create_task(server.serve(), name="api")]
        if with_worker:
            parts.append(asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop), name="worker"))
        ocpp_tap = _tap_task(runtime, stop)  # the OCPP tap, when configured (docs/ocpp-tap.md)
        if ocpp_tap is not None:
            parts.append(ocpp_tap)
        try:
            ended, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                logger.error(
                    "the %s stopped by itself; stopping the rest", ", ".join(sorted(p.get_name() for p in ended))
                )
            stop_all()
            await asyncio.wait(parts)
            for part in parts:
                part.result()  # the worker's TaskFailed, if that is why it ended
        finally:
            stop_all()
            await sampler
            remove_handlers()


async def work_until_stopped(settings: Settings) -> None:
    """Run one delivery worker until SIGINT or SIGTERM; finishes in-flight attempts before it exits."""
    async with await Runtime.open(settings, migrate_embedded=False) as runtime:
        stop = asyncio.Event()
        remove_handlers = _on_stop_signals(stop.set)
        dispatcher = runtime.dispatcher()
        freeze_startup_objects()
        logger.info("worker %s delivering", dispatcher.worker_id)
        try:
            await runtime.deliver(dispatcher, stop)
        finally:
            remove_handlers()
        logger.info("worker %s stopped", dispatcher.worker_id)


async def tap_until_stopped(settings: Settings) -> None:
    """Run the OCPP tap alone (no API, no delivery) until SIGINT or SIGTERM."""
    async with await Runtime.open(settings) as runtime:
        freeze_startup_objects()
        stop = asyncio.Event()
        remove_handlers = _on_stop_signals(stop.set)
        try:
            await run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry)
        finally:
            remove_handlers()


def _tap_task(runtime: Runtime, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The OCPP tap as a part of `serve`, when the settings name both its address and its upstream."""
    settings = runtime.settings
    if not (settings.ocpp_listen and settings.ocpp_upstream):
        return None
    # `serve` watches it beside the API and the worker: if it ends by itself, so does the process.
    return asyncio.create_task(
        run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry), name="ocpp-tap"
    )
