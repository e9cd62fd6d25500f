"""CPU and round trips per record flush, in process: what `DeliveryStore.record_attempts` costs a worker.

Opens a runtime on a fresh database of each backend with one webhook subscription, publishes events and leases
their deliveries to one worker (no dispatcher runs), then records attempts of them the way the record flusher
does at low rates: flush after flush, a pause between them so that each finds the event loop idle. Each shape
(one success; one failure; ten records, two of them failures) is measured in rounds; per flush it gives this
process's CPU time (all threads) and the round trips to the database: statements SQLAlchemy executes, queries
sent on the asyncpg connection itself (BEGIN and COMMIT among them) and trips to aiosqlite's thread. Figures are
the minimum and median over the rounds, which load on the machine moves less than a mean.
`--code DIR` imports chargewire from another checkout (a worktree of an older commit), for A/B runs.
With --adapter, it measures what SQLAlchemy's asyncpg adapter costs per statement besides: one small read run
again and again on one held connection, through SQLAlchemy and on the asyncpg connection itself.
Usage: python -m bench.record_flush [--backends postgresql,sqlite] [--flushes 200] [--rounds 5] [--adapter]
       [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

EVENT_NAME = "SessionMeterValuesNotification"
WORKER = "wrk_bench_record"
PAUSE_S = 0.002  # between flushes: each starts from an idle loop, as at 50-200 attempts/s


class Trips:
    """Round trips counted in this process: SQLAlchemy's executes, asyncpg's own queries, aiosqlite's trips."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1


def _count_trips(engine: Any) -> Trips:
    import aiosqlite
    from sqlalchemy import event

    trips = Trips()
    event.listen(engine.sync_engine, "before_cursor_execute", trips.add)

    logged: set[int] = set()

    def checked_out(dbapi_connection: Any, _record: object, _proxy: object) -> None:
        driver = dbapi_connection.driver_connection
        if hasattr(driver, "add_query_logger") and id(driver) not in logged:
            logged.add(id(driver))
            driver.add_query_logger(trips.add)

    event.listen(engine.sync_engine.pool, "checkout", checked_out)
    send: Callable[..., Any] = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        trips.add()
        return await send(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    return trips


async def _leased(runtime: Any, count: int) -> list[Any]:
    """Publish `count` events and lease their deliveries to WORKER for an hour: (delivery id, subscription id)."""
    from sqlalchemy import select, update

    from chargewire.catalog import load_event_types
    from chargewire.clock import utcnow
    from chargewire.store.tables import deliveries

    payload = load_event_types()[EVENT_NAME].example
    for start in range(0, count, 500):
        await asyncio.gather(*(runtime.publisher.publish([payload]) for _ in range(min(500, count - start))))
    async with runtime.database.transaction() as connection:
        leased = update(deliveries).where(deliveries.c.status == "pending")
        await connection.execute(leased.values(lease_owner=WORKER, next_attempt_at=utcnow() + timedelta(hours=1)))
        query = select(deliveries.c.id, deliveries.c.subscription_id).order_by(deliveries.c.id)
        return [tuple(row) for row in await connection.execute(query)]


def _record(delivery_id: str, subscription_id: str, failed: bool) -> Any:
    from chargewire.clock import utcnow
    from chargewire.ids import new_id
    from chargewire.models import Attempt, DeliveryStatus
    from chargewire.store.delivery_records import AttemptRecord

    now = utcnow()
    attempt = Attempt(
        id=new_id("att"),
        delivery_id=delivery_id,
        number=1,
        started_at=now,
        duration_ms=1.5,
        outcome="failed" if failed else "delivered",
        status_code=503 if failed else 200,
        request_headers={"Content-Type": "application/json", "Webhook-Id": delivery_id},
        response_headers={"Content-Type": "text/plain"},
        response_body="busy" if failed else "ok",
    )
    record = AttemptRecord(attempt, subscription_id, WORKER, DeliveryStatus.DELIVERED, None, None)
    if failed:
        return replace(
            record, status=DeliveryStatus.PENDING, next_attempt_at=now + timedelta(minutes=1), last_error="HTTP 503"
        )
    return record


# Each shape: how many records a flush has, and which of them (by index) are failures.
SHAPES = {"one success": (1, set()), "one failure": (1, {0}), "ten, two failed": (10, {3, 7})}


async def _measure_backend(backend: str, flushes: int, rounds: int) -> dict[str, Any]:
    from bench.common import backend_database, open_runtime

    needed = sum(size for size, _failed in SHAPES.values()) * flushes * rounds + 50
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir, backend_database(backend, Path(workdir)) as url:
        runtime = await open_runtime(url, Path(workdir))
        try:
            owner = await runtime.tokens.create("bench", ["admin"])
            target = {"callbackUrl": "http://127.0.0.1:9/"}
            await runtime.subscriptions.create(
                owner.token, {"via": "webhook", "notifications": [EVENT_NAME], "webhook": target}
            )
            leased = await _leased(runtime, needed)
            trips = _count_trips(runtime.database.engine)
            store = runtime.delivery_store
            for warm in leased[:50]:
                await store.record_attempts([_record(*warm, failed=False)])
            taken = 50
            for shape, (size, failed) in SHAPES.items():
                cpu_us: list[float] = []
                trips_per: list[float] = []
                for _round in range(rounds):
                    before, counted = time.process_time(), trips.count
                    for _flush in range(flushes):
                        batch = leased[taken : taken + size]
                        taken += size
                        await store.record_attempts([_record(*row, failed=i in failed) for i, row in enumerate(batch)])
                        await asyncio.sleep(PAUSE_S)
                    cpu_us.append((time.process_time() - before) / flushes * 1e6)
                    trips_per.append((trips.count - counted) / flushes)
                results[shape] = {
                    "cpu_us_per_flush_min": round(min(cpu_us), 1),
                    "cpu_us_per_flush_median": round(statistics.median(cpu_us), 1),
                    "trips_per_flush": round(statistics.median(trips_per), 2),
                }
        finally:
            await runtime.aclose()
    return results


async def _adapter_costs(statements: int, rounds: int) -> dict[str, Any]:
    """CPU per statement of one small read on one held PostgreSQL connection: through SQLAlchemy's adapter (its
    Core statement, compiled form cached) and on the asyncpg connection itself (the same SQL, prepared once)."""
    from sqlalchemy import bindparam, func, select

    from bench.common import backend_database, open_runtime
    from chargewire.store.tables import deliveries

    statement = select(func.min(deliveries.c.next_attempt_at)).where(deliveries.c.status == bindparam("status"))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir, backend_database("postgresql", Path(workdir)) as url:
        runtime = await open_runtime(url, Path(workdir))
        try:
            async with runtime.database.engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                driver = (await connection.get_raw_connection()).driver_connection
                sql = str(statement.compile(dialect=connection.dialect))

                async def through_sqlalchemy() -> None:
                    await connection.execute(statement, {"status": "pending"})

                async def on_the_driver() -> None:
                    await driver.fetch(sql, "pending")

                for name, run in (("sqlalchemy_execute", through_sqlalchemy), ("asyncpg_fetch", on_the_driver)):
                    cpu_us = []
                    for _round in range(rounds):
                        before = time.process_time()
                        for _statement in range(statements):
                            await run()
                        cpu_us.append((time.process_time() - before) / statements * 1e6)
                    results[name] = {
                        "cpu_us_min": round(min(cpu_us), 1),
                        "cpu_us_median": round(statistics.median(cpu_us), 1),
                    }
        finally:
            await runtime.aclose()
    return results


def main() -> None:
    """Measure each backend and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--flushes", type=int, default=200, help="flushes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--adapter", action="store_true", help="also SQLAlchemy's cost per statement on PostgreSQL")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    args = parser.parse_args()
    # Before anything imports chargewire (bench.common does): the checkout measured comes first.
    sys.path.insert(0, str(args.code.resolve()))
    import uvloop

    from bench.common import git_commit

    load = os.getloadavg()
    figures = {
        backend: uvloop.run(_measure_backend(backend, args.flushes, args.rounds))
        for backend in args.backends.split(",")
    }
    if args.adapter:
        figures["adapter, per statement"] = uvloop.run(_adapter_costs(1000, args.rounds))
    print(json.dumps({"commit": git_commit(args.code), "load_average": load, "results": figures}, indent=2))


if __name__ == "__main__":
    main()
