"""The payload of PostgreSQL's wake-up NOTIFY: the deliveries a commit made due, grouped by subscription."""

from __future__ import annotations

from chargewire.ids import new_ids
from chargewire.store.dialects.postgresql_announcements import MAX_PAYLOAD_BYTES, decoded, encoded


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
