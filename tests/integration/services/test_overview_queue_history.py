"""The overview's queue-depth chart has a history as soon as it is opened: `serve` samples from its start."""

from __future__ import annotations

import asyncio

from chargewire.runtime import Runtime


async def test_queue_depth_is_sampled_before_anyone_opens_the_overview(runtime: Runtime) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(runtime.overview.sample_queue(stop))
    try:
        async with asyncio.timeout(30):
            while not runtime.overview._queue_history:  # noqa: ASYNC110 (the sampler signals nothing to wait on)
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await sampler
    overview = await runtime.overview.snapshot()
    assert overview.queue_history[0].at < overview.generated_at
