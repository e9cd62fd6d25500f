"""`chargewire serve`: the HTTP API in one process."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn

from chargewire.api import create_app
from chargewire.cli.common import run
from chargewire.config import Settings
from chargewire.runtime import Runtime

logger = logging.getLogger(__name__)


async def serve_until_stopped(settings: Settings, host: str, port: int) -> None:
    """Open the runtime and serve the API until SIGINT or SIGTERM."""
    async with await Runtime.open(settings) as runtime:
        config = uvicorn.Config(
            create_app(runtime), host=host, port=port, log_level="info", access_log=False, lifespan="off"
        )
        await uvicorn.Server(config).serve()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Run the API (and the delivery worker, once there is one)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(serve_until_stopped(Settings(), host, port))
