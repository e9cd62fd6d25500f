"""The processes behind `chargewire serve` (the API and a delivery worker in one), `worker` and `ocpp serve`.

The web app and its server, and the OCPP tap, are imported by the functions that run them: a `worker` loads
neither (0.6 s of its start-up).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from chargewire.cli.common import freeze_startup_objects
from chargewire.config import Settings
from chargewire.runtime import Runtime

logger = logging.getLogger(__name__)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    from chargewire.cli.api_server import api_server
    from chargewire.web import create_app

    async with await Runtime.open(settings) as runtime:
        server = api_server(create_app(runtime), host, port)
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
        else:
            runtime.assign_to_workers()
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
    from chargewire.sources.ocpp import run_tap

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
    from chargewire.sources.ocpp import run_tap

    # `serve` watches it beside the API and the worker: if it ends by itself, so does the process.
    return asyncio.create_task(
        run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry), name="ocpp-tap"
    )
