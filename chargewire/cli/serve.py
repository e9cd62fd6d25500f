"""`chargewire serve` (the API and a delivery worker in one process) and `chargewire worker`.

What they run lives in `chargewire.cli.serving`, which loads the runtime (and, for `serve`, the web app).
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from chargewire.cli.common import configure_logging, load_settings, run


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Also deliver in this process")] = True,
) -> None:
    """Run the API, and a delivery worker unless --no-worker."""
    from chargewire.cli import serving

    configure_logging()
    run(serving.serve_until_stopped(load_settings(), host, port, worker))


def worker() -> None:
    """Run a delivery worker (several may share one PostgreSQL database)."""
    from chargewire.cli import serving

    configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        run(serving.work_until_stopped(load_settings()))
