"""SQLite's writer gives its next turn to a waiting publish (`go_first`) before waiting record flushes and claims,
but lets a waiting flush go after a bounded number of publishes passed it; a cancelled waiter gives up its place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chargewire.store.dialects.base import go_first
from chargewire.store.dialects.sqlite_writer import WriterTurns


async def _writer(turns: WriterTurns, name: str, order: list[str], first: bool) -> None:
    if first:
        go_first()  # in this task's own context
    async with turns.turn():
        order.append(name)
        await asyncio.sleep(0)


def _starter(turns: WriterTurns, order: list[str]) -> Callable[[str, bool], asyncio.Task[None]]:
    """Start a writer task that waits for a turn, records its name in `order` when it gets it, and gives it back."""
    return lambda name, first: asyncio.create_task(_writer(turns, name, order, first))


async def test_a_waiting_publish_takes_the_writer_before_a_flush_that_waited_longer() -> None:
    turns, order = WriterTurns(), list[str]()
    start = _starter(turns, order)
    async with turns.turn():
        tasks = [start("flush", False), start("claim", False), start("publish", True)]
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    assert order == ["publish", "flush", "claim"]


async def test_a_waiting_flush_goes_after_at_most_four_publishes_passed_it() -> None:
    turns, order = WriterTurns(), list[str]()
    start = _starter(turns, order)
    async with turns.turn():
        tasks = [start("flush", False), *(start(f"publish {n}", True) for n in range(6))]
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    assert order.index("flush") == 4
    assert len(order) == 7


async def test_a_cancelled_waiter_gives_up_its_turn_and_the_next_one_takes_it() -> None:
    turns, order = WriterTurns(), list[str]()
    start = _starter(turns, order)
    async with turns.turn():
        cancelled, flush = start("cancelled", True), start("flush", False)
        await asyncio.sleep(0)
        cancelled.cancel()
    await flush
    async with turns.turn():
        order.append("after")

    assert order == ["flush", "after"]
    assert cancelled.cancelled()
