"""What one publish's database round costs, in process: counts per publish and CPU per publish.

Publishes single events one at a time straight through the runtime's `Publisher` (no HTTP, no worker), to a
fresh SQLite file or PostgreSQL database with one webhook subscription that every event matches, and counts
per publish: statements the database ran (SQLite's trace callback; on PostgreSQL those SQLAlchemy executed),
trips to SQLite's driver thread, writes to PostgreSQL's socket (round trips, near enough), connections taken
from the pool and SQL compilations. A second pass, without the counters, gives this process's CPU time per
publish. Counts do not move with the machine's load; the CPU figure moves a little.
Usage: python -m bench.publish_round [--backend sqlite] [--publishes 2000] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EVENT_NAME = "SessionMeterValuesNotification"
_SUBSCRIPTION = {
    "via": "webhook",
    "notifications": [EVENT_NAME],
    "webhook": {"callbackUrl": "http://127.0.0.1:9/bench-publish-round"},
}


@contextmanager
def _counting(engine: Any, counts: Counter[str]) -> Iterator[None]:
    """Count, into `counts`, what the engine's connections do while the block runs."""
    import aiosqlite
    from sqlalchemy import event
    from sqlalchemy.sql import compiler

    def statement(_sql: str) -> None:
        counts["statements"] += 1

    def checkout(*_args: Any) -> None:
        counts["checkouts"] += 1

    def executed(*_args: Any) -> None:
        if engine.dialect.name != "sqlite":
            counts["statements"] += 1

    traced: set[Any] = set()
    trip = aiosqlite.Connection._execute
    compile_init = compiler.SQLCompiler.__init__
    write = asyncio.selector_events._SelectorSocketTransport.write  # type: ignore[attr-defined]

    async def counted_trip(self: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
        counts["driver_trips"] += 1
        # Set on each trip: the writer's connection stays checked out, so no checkout would see it.
        self._conn.set_trace_callback(statement)
        traced.add(self._conn)
        return await trip(self, function, *args, **kwargs)

    def counted_compile(self: Any, *args: Any, **kwargs: Any) -> None:
        counts["compilations"] += 1
        compile_init(self, *args, **kwargs)

    def counted_write(self: Any, data: Any) -> None:
        if type(self._protocol).__module__.startswith("asyncpg"):
            counts["server_writes"] += 1
        write(self, data)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine, "before_cursor_execute", executed)
    aiosqlite.Connection._execute = counted_trip  # type: ignore[method-assign]
    compiler.SQLCompiler.__init__ = counted_compile  # type: ignore[method-assign]
    asyncio.selector_events._SelectorSocketTransport.write = counted_write  # type: ignore[attr-defined]
    try:
        yield
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine, "before_cursor_execute", executed)
        aiosqlite.Connection._execute = trip  # type: ignore[method-assign]
        for connection in traced:
            connection.set_trace_callback(None)
        compiler.SQLCompiler.__init__ = compile_init  # type: ignore[method-assign]
        asyncio.selector_events._SelectorSocketTransport.write = write  # type: ignore[attr-defined]


async def _publish(publisher: Any, payload: dict[str, Any], times: int) -> None:
    for _ in range(times):
        await publisher.publish([payload])


async def _measure(backend: str, publishes: int, profile: Path | None) -> dict[str, float]:
    from bench.common import backend_database, open_runtime
    from chargewire.catalog import load_event_types

    payload = load_event_types()[EVENT_NAME].example
    with tempfile.TemporaryDirectory() as workdir, backend_database(backend, Path(workdir)) as url:
        runtime = await open_runtime(url, Path(workdir))
        try:
            owner = (await runtime.tokens.create("bench", ["admin"])).token
            await runtime.subscriptions.create(owner, _SUBSCRIPTION)
            publisher = runtime.publisher
            await _publish(publisher, payload, 50)  # warm-up: compiled statements, pooled connections
            counts: Counter[str] = Counter()
            with _counting(runtime.database.engine, counts):
                await _publish(publisher, payload, publishes // 10)
            per_publish = {name: round(count / (publishes // 10), 2) for name, count in sorted(counts.items())}
            profiler = cProfile.Profile(time.thread_time) if profile else None
            if profiler:
                profiler.enable()
            cpu_before = time.process_time()
            await _publish(publisher, payload, publishes)
            cpu = time.process_time() - cpu_before
            if profiler and profile:
                profiler.disable()
                profiler.dump_stats(profile)
                pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
        finally:
            await runtime.aclose()
    return {**per_publish, "cpu_us_per_publish": round(cpu / publishes * 1e6, 1)}


def main() -> None:
    """Measure on each backend asked for and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--publishes", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed publishes here")
    args = parser.parse_args()
    figures = {
        backend: asyncio.run(_measure(backend, args.publishes, args.profile)) for backend in args.backend or ["sqlite"]
    }
    print(json.dumps({"load_average": os.getloadavg(), "results": figures}, indent=2))


if __name__ == "__main__":
    main()
