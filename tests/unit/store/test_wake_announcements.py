"""The payload of PostgreSQL's wake-up NOTIFY: the deliveries a commit made due, grouped by subscription."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.ids import new_ids
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.dialects.postgresql_announcements import (
    MAX_PAYLOAD_BYTES,
    Assignment,
    assignment_bytes,
    decoded,
    decoded_assignments,
    encoded,
    encoded_with_assignments,
)


def test_a_payload_names_each_delivery_with_its_subscription_and_reads_back_in_id_order() -> None:
    announced = [("dlv_3", "sub_b"), ("dlv_1", "sub_a"), ("dlv_2", "sub_b")]

    payload = encoded(announced)

    assert payload == "sub_b=dlv_3,dlv_2;sub_a=dlv_1"
    assert decoded(payload) == [("dlv_1", "sub_a"), ("dlv_2", "sub_b"), ("dlv_3", "sub_b")]


def test_deliveries_that_would_not_fit_in_a_notify_are_sent_as_an_empty_payload_meaning_look() -> None:
    fitting = [(delivery_id, "sub_a") for delivery_id in new_ids("dlv", MAX_PAYLOAD_BYTES // 40)]
    too_many = [(delivery_id, "sub_a") for delivery_id in new_ids("dlv", MAX_PAYLOAD_BYTES // 20)]

    assert 0 < len(encoded(fitting)) <= MAX_PAYLOAD_BYTES
    assert encoded(too_many) == ""
    assert encoded([]) == ""


def test_an_empty_or_foreign_payload_names_nothing() -> None:
    assert decoded("") == []
    assert decoded("hello") == []
    assert decoded("sub_a=dlv_1;=dlv_2") == []


def _assignment(worker_id: str, payload: bytes = b'{"a": "\\u00e9;=,"}') -> Assignment:
    received_at = datetime(2026, 12, 6, 23, 59, 1, 250000, tzinfo=UTC)
    delivery = ClaimedDelivery("dlv_1", "evt_1", "sub_a", "BootNotification", 0, None, payload, "CP-1", received_at)
    return Assignment(worker_id, received_at + timedelta(seconds=60), [delivery])


def test_an_assignment_reaches_its_worker_whole_and_wakes_no_other() -> None:
    assignment = _assignment("wrk_a")

    payload = encoded_with_assignments(None, [assignment])

    assert len(payload.encode()) == assignment_bytes(assignment)
    assert decoded_assignments(payload, "wrk_a") == ([], [assignment], False)
    assert decoded_assignments(payload, "wrk_b") == ([], [], False)


def test_a_payload_with_assignments_still_names_its_due_deliveries_or_asks_every_worker_to_look() -> None:
    assignment = _assignment("wrk_a")

    naming = encoded_with_assignments(encoded([("dlv_2", "sub_b")]), [assignment])
    looking = encoded_with_assignments("", [assignment])

    assert decoded_assignments(naming, "wrk_b") == ([("dlv_2", "sub_b")], [], True)
    assert decoded_assignments(looking, "wrk_a") == ([], [assignment], True)
    assert decoded_assignments(encoded([("dlv_2", "sub_b")]), "wrk_a") == ([("dlv_2", "sub_b")], None, True)
