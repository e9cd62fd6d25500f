"""bench.idle_timers counts an event loop's timers by the chargewire function that asked for them."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bench.idle_timers import Tally
from chargewire.dispatch.idempotency_sweep import IdempotencySweep


class _NoKeys:
    """An idempotency store with nothing to sweep."""

    async def delete_created_before(self, _cutoff: datetime, _limit: int) -> int:
        return 0


async def test_a_loops_wait_is_counted_as_a_timer_of_the_loop_not_of_the_helper_it_waits_through() -> None:
    tally, stop = Tally(), asyncio.Event()
    sweep = IdempotencySweep(_NoKeys(), 60.0)  # type: ignore[arg-type]
    with tally.installed(asyncio.get_running_loop()):
        tally.counting = True
        running = asyncio.create_task(sweep.run(stop))
        for _ in range(10):
            await asyncio.sleep(0)
        stop.set()
        await running

    assert tally.timers["dispatch/idempotency_sweep.py:run"] == 1
