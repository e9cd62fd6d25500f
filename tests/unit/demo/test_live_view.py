"""The demo's live table says what each source published and what the OCPP charge points did."""

from __future__ import annotations

from chargewire.channels.base import AttemptResult
from chargewire.clock import utcnow
from chargewire.demo.live_view import LatencyWindow, Published, render
from chargewire.demo.sample_receiver import ReceiverStats
from chargewire.models import Attempt, DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery


def test_live_table_shows_the_ocpp_charge_points_and_what_the_api_and_the_tap_published() -> None:
    table = render(Published(api=120, tap=45), {}, LatencyWindow(), ReceiverStats(), "4/4 connected")
    lines = table.splitlines()
    assert lines[0] == "OCPP       4/4 connected"
    assert lines[1] == "published        120   through the API   45 by the OCPP tap"


def test_live_table_without_the_tap_shows_only_what_the_api_published() -> None:
    table = render(Published(api=7), {}, LatencyWindow(), ReceiverStats(), None)
    assert table.splitlines()[0] == "published          7   through the API"


def test_live_table_counts_the_deliveries_of_this_run_from_the_dispatches_it_watched() -> None:
    now = utcnow()
    latency = LatencyWindow()
    for number, status in enumerate([DeliveryStatus.DELIVERED, DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]):
        delivery = ClaimedDelivery(f"dlv_{number}", "evt_1", "sub_1", "BootNotification", 0, None, b"{}", None, now)
        attempt = Attempt(f"att_{number}", delivery.id, 1, now, 1.0, status.value)
        record = AttemptRecord(attempt, "sub_1", "wrk", status, None, None)
        latency.observe([delivery], [AttemptResult(now, 1.0)], [record])

    table = render(Published(api=3), {"due": 1}, latency, ReceiverStats(), None)

    # Not counted in the database: the queue depth reads only the work left, never delivered rows.
    assert table.splitlines()[1].startswith("delivered          2   latency")
    assert table.splitlines()[2] == "retrying           1"
