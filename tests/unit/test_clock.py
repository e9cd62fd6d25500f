"""The process clock: a replay moves it, and the times ids are made of follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargewire import clock


def test_a_shifted_clock_reads_the_moment_it_was_moved_to_and_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "_shift_s", 0.0)  # put back afterwards
    monkeypatch.setattr(clock, "_shift", timedelta(0))
    moment = datetime(2020, 2, 29, 23, 59, tzinfo=UTC)
    clock.shift_to(moment)
    assert moment <= clock.utcnow() < moment + timedelta(seconds=5)
    assert 0 <= clock.now_ms() - int(moment.timestamp() * 1000) < 5000
