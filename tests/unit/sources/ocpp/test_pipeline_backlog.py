"""The event pipeline catching up on a backlog lets the event loop run between derivations, so frames are
forwarded while it derives (a derivation served from the registry's memory never waits by itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from chargewire.sources.ocpp import pipeline as pipeline_module
from chargewire.sources.ocpp.metrics import TapMetrics
from chargewire.sources.ocpp.pipeline import Change, EventPipeline, Link, Observation
from chargewire.sources.ocpp.registry import Registry

BACKLOG = 100


class LoopTurns:
    """Counts the turns of the event loop, as a forwarding connection would get them."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


class InMemoryRegistry:
    """A registry whose ids come from memory without waiting, noting the loop's turn at each."""

    def __init__(self, turns: LoopTurns) -> None:
        self._turns = turns
        self.turns_seen: list[int] = []

    async def connected(self, identity: str, version: str | None) -> int:
        self.turns_seen.append(self._turns.count)
        return len(self.turns_seen)


async def _publish(payloads: Sequence[dict[str, Any]]) -> list[str]:
    return [f"evt_{index}" for index in range(len(payloads))]


async def test_the_loop_turns_between_derivations_when_a_backlog_takes_longer_than_a_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline_module, "_SLICE_S", 0.0, raising=False)  # every derivation outlasts the slice
    turns = LoopTurns()
    registry = InMemoryRegistry(turns)
    pipeline = EventPipeline(
        cast(Registry, registry),
        _publish,
        TapMetrics(),
        max_waiting=BACKLOG + 1,
        max_batch=1000,
        long_term_unavailable_s=3600.0,
    )
    for number in range(BACKLOG):
        pipeline.offer(Observation(Link(f"CP-{number}", "ocpp1.6"), change=Change.CONNECTED))
    ticking = asyncio.create_task(turns.run())

    running = asyncio.create_task(pipeline.run())
    await pipeline.close()
    await running
    ticking.cancel()

    # The first is derived before the batch gathers; every later one after a turn of the loop.
    assert len(set(registry.turns_seen[1:])) == BACKLOG - 1
