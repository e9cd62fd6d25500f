"""CPU per webhook attempt at low rates, in process: what one delivery costs from the hand-off to its record.

Opens a runtime on a fresh SQLite file with one webhook subscription to `bench.receiver` (its own process) and
publishes the events first, with no worker running; their deliveries are then leased to the runtime's worker
(`Runtime.deliver`, as `serve` runs it) and handed to it one at a time at a fixed rate, the way a local
publish's commit does (`Dispatcher.reserve`, `take`). So only the attempt path is measured: the hand-off, the
subscription lookup, the signed POST, the outcome and the record's flush. This process's CPU time (all its
threads, the SQLite driver's too) over the attempts, until the last is recorded, divided by their number, is
the cost per attempt; the worker's idle cost per second is measured beside it. At these rates each attempt runs
and is recorded alone, as in `bench.load` at 50-200 events/s, so per-round costs (tasks, loop wake-ups, trips
to the driver's thread) show here as they do there, without the API's and the machine's noise.

Counted per attempt besides: tasks created, event loop wake-ups (with `--loop asyncio` only: uvloop keeps its
own), trips to aiosqlite's thread and statements SQLAlchemy executes.
`--code DIR` imports chargewire from another checkout (a worktree of an older commit), for A/B runs.
Usage: python -m bench.attempt_path [--rates 50,200] [--seconds 10] [--loop uvloop] [--code DIR] [--profile F]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

EVENT_NAME = "SessionMeterValuesNotification"
SETTLE_S = 0.3  # after the last arrival: the last record's flush (20 ms) and nothing else left running


class Counts:
    """Rounds counted in this process: tasks, loop wake-ups, trips to aiosqlite's thread, SQLAlchemy executes."""

    def __init__(self) -> None:
        self.tasks = 0
        self.wakeups = 0
        self.trips = 0
        self.statements = 0

    def snapshot(self) -> dict[str, int]:
        return dict(vars(self))


def _install_counters(loop: asyncio.AbstractEventLoop, engine: Any) -> Counts:
    import aiosqlite
    from sqlalchemy import event

    counts = Counts()
    factory = loop.get_task_factory()

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        counts.tasks += 1
        if factory is not None:
            return factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting_factory)
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        select = selector.select

        def counting_select(timeout: float | None = None) -> Any:
            counts.wakeups += 1
            return select(timeout)

        selector.select = counting_select
    execute: Callable[..., Any] = aiosqlite.Connection._execute

    async def counting_execute(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        counts.trips += 1
        return await execute(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counting_execute  # type: ignore[method-assign]

    def counted(*_args: Any) -> None:
        counts.statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    return counts


async def _prepared(runtime: Any, dispatcher: Any, count: int) -> list[Any]:
    """Publish `count` events (no dispatcher takes them yet), lease their deliveries to `dispatcher`'s worker for
    an hour, and return them as the worker sends them (`ClaimedDelivery`), in publish order."""
    from sqlalchemy import select, update

    from chargewire.catalog import load_event_types
    from chargewire.clock import utcnow
    from chargewire.store.delivery_records import ClaimedDelivery
    from chargewire.store.tables import deliveries, events

    payload = load_event_types()[EVENT_NAME].example
    for start in range(0, count, 500):
        await asyncio.gather(*(runtime.publisher.publish([payload]) for _ in range(min(500, count - start))))
    later = utcnow() + timedelta(hours=1)
    async with runtime.database.transaction() as connection:
        leased = update(deliveries).where(deliveries.c.status == "pending", deliveries.c.lease_owner.is_(None))
        await connection.execute(leased.values(lease_owner=dispatcher.worker_id, next_attempt_at=later))
        rows = (
            await connection.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.event_id,
                    deliveries.c.subscription_id,
                    deliveries.c.event_name,
                    events.c.payload,
                    events.c.entity_id,
                    events.c.received_at,
                )
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.lease_owner == dispatcher.worker_id, deliveries.c.status == "pending")
                .order_by(deliveries.c.id)
            )
        ).all()
    return [
        ClaimedDelivery(id_, event, sub, name, 0, None, bytes(body), entity, at)
        for id_, event, sub, name, body, entity, at in rows
    ]


async def _hand_off_paced(dispatcher: Any, claimed: list[Any], rate: int) -> None:
    """Hand each delivery to the dispatcher as a local publish's commit does (`reserve`, `take`), every 1/rate s."""
    from chargewire.store.delivery_writes import NewDelivery

    loop = asyncio.get_running_loop()
    start = loop.time()
    for sequence, delivery in enumerate(claimed):
        delay = start + sequence / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        new = NewDelivery(delivery.id, delivery.event_id, delivery.subscription_id, delivery.event_name)
        lease = dispatcher.reserve([new])
        if lease is None:
            raise RuntimeError("the dispatcher took no hand-off: it is full")
        dispatcher.take(lease, [delivery])


async def _until_received(receiver: Any, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while int((await asyncio.to_thread(receiver.stats))["requests"]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {receiver.stats()['requests']} of {count} deliveries arrived")
        await asyncio.sleep(0.05)


class Meter:
    """CPU time since it was made: the process's (all threads, user and system) and the event loop thread's; and
    the rounds `Counts` counted meanwhile."""

    def __init__(self, counts: Counts) -> None:
        self._counts = counts
        self._rounds = counts.snapshot()
        self._times = os.times()
        self._loop_thread = time.thread_time()

    def per(self, count: float, unit: str) -> dict[str, float]:
        """Each figure divided by `count` (attempts, or seconds), CPU in microseconds."""
        times, rounds = os.times(), self._counts.snapshot()
        user, system = times.user - self._times.user, times.system - self._times.system
        cpu = {
            "cpu_us": user + system,
            "user_us": user,
            "system_us": system,
            "loop_thread_us": time.thread_time() - self._loop_thread,
        }
        return {f"{name}_per_{unit}": round(value / count * 1e6, 1) for name, value in cpu.items()} | {
            f"{name}_per_{unit}": round((rounds[name] - self._rounds[name]) / count, 2) for name in rounds
        }


async def _measure(rates: list[int], seconds: float, profile: Path | None) -> dict[str, Any]:
    from bench.common import backend_database, open_runtime
    from bench.receiver import running_receiver

    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as workdir,
        backend_database("sqlite", Path(workdir)) as url,
        running_receiver() as receiver,
    ):
        runtime = await open_runtime(url, Path(workdir))
        try:
            owner = await runtime.tokens.create("bench", ["admin"])
            subscription = {"via": "webhook", "notifications": [EVENT_NAME], "webhook": {"callbackUrl": receiver.url()}}
            await runtime.subscriptions.create(owner.token, subscription)
            dispatcher = runtime.dispatcher()
            counts = _install_counters(asyncio.get_running_loop(), runtime.database.engine)
            warm_up = 100
            claimed = await _prepared(runtime, dispatcher, warm_up + sum(round(rate * seconds) for rate in rates))
            stop = asyncio.Event()
            worker = asyncio.ensure_future(runtime.deliver(dispatcher, stop))
            await asyncio.sleep(1.0)
            await _hand_off_paced(dispatcher, claimed[:warm_up], 100)
            await _until_received(receiver, warm_up)
            await asyncio.sleep(SETTLE_S)
            meter = Meter(counts)
            await asyncio.sleep(seconds / 2)
            results["idle"] = meter.per(seconds / 2, "s")
            profiler = cProfile.Profile(time.thread_time) if profile else None
            taken = warm_up
            for rate in rates:
                batch = claimed[taken : taken + round(rate * seconds)]
                taken += len(batch)
                receiver.reset()
                meter = Meter(counts)
                if profiler:
                    profiler.enable()
                await _hand_off_paced(dispatcher, batch, rate)
                await _until_received(receiver, len(batch))
                await asyncio.sleep(SETTLE_S)
                if profiler:
                    profiler.disable()
                results[f"{rate}/s"] = meter.per(len(batch), "attempt")
            stop.set()
            await worker
            if profiler and profile:
                profiler.dump_stats(profile)
        finally:
            await runtime.aclose()
    return results


def main() -> None:
    """Measure at each rate and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,200", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="uvloop, as `serve` runs")
    parser.add_argument("--profile", type=Path, help="a cProfile (event loop thread's CPU) of the delivering runs")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    args = parser.parse_args()
    # Before anything imports chargewire (bench.common does): the checkout measured comes first.
    sys.path.insert(0, str(args.code.resolve()))
    from bench.common import git_commit

    rates = [int(rate) for rate in args.rates.split(",")]
    load = os.getloadavg()
    coroutine = _measure(rates, args.seconds, args.profile)
    if args.loop == "uvloop":
        import uvloop

        figures = uvloop.run(coroutine)
    else:
        figures = asyncio.run(coroutine)
    print(
        json.dumps(
            {"commit": git_commit(args.code), "loop": args.loop, "load_average": load, "results": figures}, indent=2
        )
    )


if __name__ == "__main__":
    main()
