"""What an idle delivery worker does each second, by source: event loop timers, store calls, and their CPU.

`bench.thread_costs` counts a running process's loop wake-ups and CPU per thread; this names who asks for them. A
runtime on a fresh database runs its worker (`Runtime.deliver`, as `worker` and `serve` do, without uvicorn) on
the standard asyncio loop, whose `call_at` (behind every `call_later`, `wait_for` and `asyncio.wait` timeout)
and the database's `reading` and `transaction` are counted by the chargewire function that called them, over
`--seconds` after a start-up pause. Then each periodic store call is timed alone, 15 times, 50 ms apart (cold,
as an idle worker makes them): process CPU (all threads), min and median.
Usage: python -m bench.idle_timers [--backend sqlite] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.processes import open_backend
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.heartbeat import Heartbeat
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.database import Database, create_database

START_UP_S = 3.0
TIMED_CALLS = 15
_SKIPPED = ("/chargewire/waiting.py", "/chargewire/store/database.py")


def caller() -> str:
    """`module:function` of the innermost chargewire frame that asked (helpers that only wait are passed over)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/chargewire/" in frame.filename and not frame.filename.endswith(_SKIPPED):
            return f"{frame.filename.split('/chargewire/')[-1]}:{frame.name}"
    return "elsewhere (asyncio, drivers)"


class Tally:
    """Counts timers and store calls by caller while `counting` is set."""

    def __init__(self) -> None:
        self.counting = False
        self.timers: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    @contextmanager
    def installed(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Count `loop.call_at` and `Database.reading`/`transaction` for the block."""
        call_at = loop.call_at
        originals = {name: getattr(Database, name) for name in ("reading", "transaction")}

        def counted_call_at(when: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
            if self.counting:
                self.timers[caller()] += 1
            return call_at(when, callback, *args, **kwargs)

        def counted(name: str) -> Callable[..., Any]:
            def call(database: Database, *args: Any, **kwargs: Any) -> Any:
                if self.counting:
                    self.calls[f"{name} from {caller()}"] += 1
                return originals[name](database, *args, **kwargs)

            return call

        loop.call_at = counted_call_at  # type: ignore[method-assign]
        for name in originals:
            setattr(Database, name, counted(name))
        try:
            yield
        finally:
            loop.call_at = call_at  # type: ignore[method-assign]
            for name, original in originals.items():
                setattr(Database, name, original)


async def cpu_per_call_us(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Process CPU of one `call`, min and median of `TIMED_CALLS`, each 50 ms after the last."""
    spent = []
    for _ in range(TIMED_CALLS):
        await asyncio.sleep(0.05)
        started = time.process_time()
        await call()
        spent.append((time.process_time() - started) * 1e6)
    return min(spent), statistics.median(spent)


async def measure(url: str, seconds: float) -> None:
    """Run an idle worker on `url` (empty: the embedded SQLite file) and print what it did each second."""
    if url:
        database = create_database(url)
        await migrate.upgrade(database)
        await database.aclose()
    settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), secret_key="bench-" * 8)
    runtime = await Runtime.open(settings)
    tally, stop = Tally(), asyncio.Event()
    with tally.installed(asyncio.get_running_loop()):
        dispatcher = runtime.dispatcher()
        worker = asyncio.create_task(runtime.deliver(dispatcher, stop))
        await asyncio.sleep(START_UP_S)
        tally.counting, cpu_s = True, time.process_time()
        await asyncio.sleep(seconds)
        tally.counting, cpu_s = False, time.process_time() - cpu_s
    print(f"idle worker over {seconds:g} s: {cpu_s * 1000 / seconds:.2f} ms CPU per second (process, all threads)")
    for title, counts in (("loop timers per second", tally.timers), ("store calls per second", tally.calls)):
        print(f"  {title}:")
        for name, count in counts.most_common():
            print(f"    {count / seconds:6.2f}  {name}")
    beat = Heartbeat(runtime.worker_store, dispatcher.worker_id, runtime.supervisor or _no_supervisor())
    timed: dict[str, Callable[[], Awaitable[object]]] = {
        "heartbeat (WorkerStore.beat)": lambda: runtime.worker_store.beat(beat.current()),
        "claim loop's read (DeliveryStore.next_due_at)": runtime.delivery_store.next_due_at,
        "streamer's look (StreamStore.look)": lambda: runtime.stream_store.look(utcnow()),
    }
    print("  CPU per call, alone (µs, min / median):")
    for name, call in timed.items():
        least, median = await cpu_per_call_us(call)
        print(f"    {least:6.0f} / {median:6.0f}  {name}")
    stop.set()
    await worker
    await runtime.aclose()


def _no_supervisor() -> Any:
    raise RuntimeError("the worker's supervisor is set while it runs")


def main() -> None:
    """Measure an idle worker on the chosen store."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to count, after the start-up pause")
    options = parser.parse_args()
    if options.backend == "sqlite":
        asyncio.run(measure("", options.seconds))
        return
    with open_backend("postgresql") as backend:
        asyncio.run(measure(backend.fresh("idle-timers")[0], options.seconds))


if __name__ == "__main__":
    main()
