"""`chargewire serve` (the API and a delivery worker in one process) and `chargewire worker`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Annotated

import typer
import uvicorn

from chargewire.api import create_app
from chargewire.cli import ocpp
from chargewire.cli.common import run
from chargewire.config import Settings
from chargewire.runtime import Runtime

logger = logging.getLogger(__name__)
_YOUNG_COLLECTION_ALLOCATIONS = 100_000


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _freeze_startup_objects() -> None:
    """Move what start-up made (modules, schemas, the app) out of the garbage collector's sight.

    Full collections walked those ~120,000 long-lived objects again and again: 6-10 µs of every ingested
    event. Objects made later are collected as before, the youngest after 100,000 allocations rather than
    Python's 700: a Kafka worker allocates a few dozen objects per record and keeps thousands of records in
    flight, so a young collection mostly walks objects that are still in use. Python's 700 cost it about 5
    of its 40 µs per record on the event loop, and 10,000 still about 4 more than 100,000 (drains of 100,000
    records, back to back).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION_ALLOCATIONS)


async def serve_until_stopped(settings: Settings, host: str, port: int, with_worker: bool) -> None:
    """Open the runtime and serve the API (and deliver, unless told not to) until SIGINT or SIGTERM."""
    async with await Runtime.open(settings) as runtime:
        config = uvicorn.Config(
            create_app(runtime), host=host, port=port, log_level="info", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        _freeze_startup_objects()
        stop = asyncio.Event()
        worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop)) if with_worker else None
        ocpp_tap = ocpp.tap_task(runtime, stop)  # the OCPP tap, when configured (docs/ocpp-tap.md)
        try:
            await server.serve()
        finally:
            stop.set()
            if ocpp_tap is not None:
                await ocpp_tap
            if worker is not None:
                await worker


async def work_until_stopped(settings: Settings) -> None:
    """Run one delivery worker until SIGINT or SIGTERM; finishes in-flight attempts before it exits."""
    async with await Runtime.open(settings, migrate_embedded=False) as runtime:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        dispatcher = runtime.dispatcher()
        _freeze_startup_objects()
        logger.info("worker %s delivering", dispatcher.worker_id)
        await runtime.deliver(dispatcher, stop)
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
