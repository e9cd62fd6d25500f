"""The simulated charging network produces valid, realistic event streams."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime

from chargewire.catalog import validate
from chargewire.sources import ChargingNetwork

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_every_simulated_event_validates() -> None:
    stream = ChargingNetwork(charge_points=20).events(START)
    names = Counter(validate(payload) for payload in itertools.islice(stream, 5000))
    assert {
        "BootNotification",
        "NetworkStatusNotification",
        "HardwareStatusNotification",
        "SessionStartStopNotification",
        "SessionMeterValuesNotification",
        "SessionUpdateNotification",
    } <= set(names)


def test_meter_values_dominate_the_stream_as_in_a_real_network() -> None:
    stream = ChargingNetwork(charge_points=50).events(START)
    names = Counter(payload["notification"] for payload in itertools.islice(stream, 20_000))
    assert names["SessionMeterValuesNotification"] > sum(names.values()) / 2


def test_a_session_starts_before_its_meter_values_and_stops_after_them() -> None:
    stream = ChargingNetwork(charge_points=3).events(START)
    seen: dict[int, list[str]] = {}
    for payload in itertools.islice(stream, 3000):
        if payload["notification"] == "SessionStartStopNotification":
            seen.setdefault(payload["sessionId"], []).append(payload["action"])
        elif payload["notification"] == "SessionMeterValuesNotification":
            seen.setdefault(payload["sessionId"], []).append("meter")
    for actions in seen.values():
        assert actions[0] == "start"
        assert "start" not in actions[1:]
        if "stop" in actions:
            assert actions[-1] == "stop"


def test_the_same_seed_gives_the_same_stream() -> None:
    first = list(itertools.islice(ChargingNetwork(5, seed=3).events(START), 200))
    second = list(itertools.islice(ChargingNetwork(5, seed=3).events(START), 200))
    assert first == second


def test_live_events_carry_the_clocks_time_not_a_simulated_time_running_ahead() -> None:
    stream = ChargingNetwork(charge_points=25).live_events(lambda: START)
    stamps = set(re.findall(r'"(\d{4}-\d\d-\d\dT[^"]+Z)"', json.dumps(list(itertools.islice(stream, 3000)))))
    assert stamps == {START.isoformat(timespec="microseconds").replace("+00:00", "Z")}
