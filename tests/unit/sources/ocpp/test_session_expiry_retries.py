"""The tap's stopped-session expiry retries a failed run soon, backing off, instead of waiting the hour."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chargewire.sources.ocpp import tap
from chargewire.sources.ocpp.metrics import TapMetrics


class _RegistryFailingTwice:
    def __init__(self) -> None:
        self.calls = 0

    async def expire_stopped(self, kept_s: float) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise ConnectionRefusedError("database down")
        return 3


async def test_a_failed_expiry_is_retried_after_30_then_60_seconds_and_then_hourly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise asyncio.CancelledError

    monkeypatch.setattr(tap.asyncio, "sleep", recorded_sleep)
    registry: Any = _RegistryFailingTwice()
    metrics = TapMetrics()

    with pytest.raises(asyncio.CancelledError):
        await tap._expire_regularly(registry, 7 * 86400.0, metrics)

    assert waits == [30.0, 60.0, 3600.0, 3600.0]
    assert registry.calls == 4
    assert metrics.registry_failures == 2
