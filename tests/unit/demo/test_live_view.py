"""The demo's live table says what each source published and what the OCPP charge points did."""

from __future__ import annotations

from chargewire.demo.live_view import LatencyWindow, Published, render
from chargewire.demo.sample_receiver import ReceiverStats


def test_live_table_shows_the_ocpp_charge_points_and_what_the_api_and_the_tap_published() -> None:
    table = render(Published(api=120, tap=45), {"delivered": 150}, LatencyWindow(), ReceiverStats(), "4/4 connected")
    lines = table.splitlines()
    assert lines[0] == "OCPP       4/4 connected"
    assert lines[1] == "published        120   through the API   45 by the OCPP tap"


def test_live_table_without_the_tap_shows_only_what_the_api_published() -> None:
    table = render(Published(api=7), {}, LatencyWindow(), ReceiverStats(), None)
    assert table.splitlines()[0] == "published          7   through the API"
