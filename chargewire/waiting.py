"""Waiting in long-running loops: for the first of several events, and before connecting again."""

from __future__ import annotations

import asyncio


def reconnect_delay_s(failures: int, first_s: float, max_s: float) -> float:
    """Seconds to wait before connecting again after `failures` failed attempts in a row: doubling, capped."""
    return float(min(max_s, first_s * 2 ** min(failures, 32)))


async def wait_for_any(events: list[asyncio.Event], timeout_s: float) -> None:
    """Return when any of `events` is set, or after `timeout_s`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
