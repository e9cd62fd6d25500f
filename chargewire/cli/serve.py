"""`chargewire serve` (the API and a delivery worker in one process) and `chargewire worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
import uvicorn

from chargewire.cli import ocpp
from chargewire.cli.common import freeze_startup_objects, run
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.web import create_app

logger = logging.getLogger(__name__)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# After a stop signal, requests under way get this long to finish before their connections are closed.
_GRACEFUL_SHUTDOWN_S = 5


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class _Server(uvicorn.Server):
    """uvicorn's server without signal handlers of its own: ours stop the API and the worker together.

    uvicorn's handlers catch SIGINT and SIGTERM while it serves and raise them again once it has stopped:
    SIGTERM then killed the process (exit 143) before the worker had recorded its attempts, and SIGINT
    became a KeyboardInterrupt inside the worker's shutdown.
    """

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
        ocpp_tap = ocpp.tap_task(runtime, stop)  # the OCPP tap, when configured (docs/ocpp-tap.md)
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


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Also deliver in this process")] = True,
) -> None:
    """Run the API, and a delivery worker unless --no-worker."""
    _configure_logging()
    run(serve_until_stopped(Settings(), host, port, worker))


def worker() -> None:
    """Run a delivery worker (several may share one PostgreSQL database)."""
    _configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        run(work_until_stopped(Settings()))
