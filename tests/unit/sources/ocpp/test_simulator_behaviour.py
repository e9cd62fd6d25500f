"""What a simulated charge point decides per meter interval, and its meter physics."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from chargewire.errors import ConfigurationError
from chargewire.sources.ocpp.simulator import Behaviour, FleetOptions
from chargewire.sources.ocpp.simulator.behaviour import (
    Connector,
    Move,
    StationMove,
    connector_move,
    station_moves,
)

CHANCES = ("start", "stop", "fault", "security_event", "data_transfer", "disconnect")


def with_chances(chance: float) -> Behaviour:
    """A behaviour in which everything happens with `chance` per interval."""
    return Behaviour(**{f"{name}_chance": chance for name in CHANCES})


NEVER = with_chances(0.0)
ALWAYS = with_chances(1.0)


def charging_connector(rng: random.Random) -> Connector:
    connector = Connector(1, meter_wh=1_000.0)
    connector.begin(rng)
    connector.charging = True
    return connector


def test_a_charging_connector_stops_once_the_car_is_full_whatever_the_chances() -> None:
    rng = random.Random(1)
    connector = charging_connector(rng)
    connector.soc_percent = 100.0
    assert connector_move(connector, NEVER, rng) is Move.STOP


def test_a_charging_connector_reports_meter_values_until_it_stops() -> None:
    rng = random.Random(1)
    assert connector_move(charging_connector(rng), NEVER, rng) is Move.METER
    assert connector_move(charging_connector(rng), ALWAYS, rng) is Move.STOP


def test_a_faulted_connector_recovers_in_the_next_interval() -> None:
    connector = Connector(1, meter_wh=0.0, faulted=True)
    assert connector_move(connector, ALWAYS, random.Random(1)) is Move.RECOVER


def test_an_idle_connector_faults_before_it_would_start_a_session() -> None:
    rng = random.Random(1)
    assert connector_move(Connector(1, meter_wh=0.0), ALWAYS, rng) is Move.FAULT
    assert connector_move(Connector(1, meter_wh=0.0), NEVER, rng) is Move.WAIT


def test_charging_raises_the_meter_by_the_power_drawn_and_the_state_of_charge_with_it() -> None:
    rng = random.Random(3)
    connector = charging_connector(rng)
    before_wh, before_soc = connector.meter_wh, connector.soc_percent
    connector.advance(3600, rng)
    assert 0.9 * connector.power_w <= connector.meter_wh - before_wh <= 1.05 * connector.power_w
    assert connector.soc_percent > before_soc


def test_a_reading_is_in_the_units_charge_points_send_with_an_rfc3339_utc_timestamp() -> None:
    connector = charging_connector(random.Random(5))
    reading = connector.reading(datetime(2026, 12, 5, 10, 0, tzinfo=UTC))
    assert reading.timestamp == "2026-12-05T10:00:00.000Z"
    assert reading.energy_wh == 1_000
    assert reading.power_w == connector.power_w
    assert reading.current_a == round(connector.power_w / 230 / 3, 1)


def test_station_moves_happen_by_their_own_chances_in_a_fixed_order() -> None:
    rng = random.Random(1)
    assert station_moves(NEVER, rng) == []
    assert station_moves(ALWAYS, rng) == [
        StationMove.SECURITY_EVENT,
        StationMove.DATA_TRANSFER,
        StationMove.DISCONNECT,
    ]


@pytest.mark.parametrize(
    ("url", "versions"),
    [("ws://127.0.0.1:9000/ocpp/", ("1.5",)), ("ws://127.0.0.1:9000/ocpp/", ()), ("http://csms/ocpp/", ("1.6",))],
)
def test_fleet_options_refuse_unknown_versions_and_urls_that_are_not_websocket(
    url: str, versions: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigurationError):
        FleetOptions(url=url, versions=versions)
