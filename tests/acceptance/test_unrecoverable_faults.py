"""A fault that retrying cannot clear ends `serve` non-zero with the reason on stderr, so whatever supervises the
process starts it again, instead of leaving it up and delivering nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from chargewire.devtools.postgres import free_port
from chargewire.store.database import create_database
from tests.support.processes import start_logged, wait_until_serving


async def _drop_heartbeats_table(url: str) -> None:
    database = create_database(url)
    try:
        async with database.transaction() as connection:
            await connection.execute(text("DROP TABLE worker_heartbeats"))
    finally:
        await database.aclose()


def test_serve_exits_non_zero_naming_the_loop_when_its_table_is_dropped_under_it(
    migrated_env: dict[str, str], tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    server = start_logged(migrated_env, log, "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log)
        asyncio.run(_drop_heartbeats_table(migrated_env["CHARGEWIRE_DATABASE_URL"]))
        code = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = log.read_text()
    assert code == 1, output[-3000:]
    assert "error: heartbeat failed and cannot recover" in output
