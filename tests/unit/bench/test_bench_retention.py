"""The retention benchmark's pure parts: the day's traffic, the attempts' outcomes, the report's figures."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.retention import (
    FAILED_SHARE,
    MIX,
    RETRY_SHARE,
    WORKER,
    event_names,
    hourly_events,
    outcome_of,
    record_for,
)
from bench.retention_report import markdown_table, steady_figures
from chargewire.ids import new_ids
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import ClaimedDelivery

AT = datetime(2027, 1, 1, tzinfo=UTC)


def test_hourly_events_add_up_to_the_scaled_day_of_forty_events_a_second() -> None:
    hours = hourly_events(0.01)
    assert len(hours) == 24
    assert sum(hours) == 34_560
    assert max(hours) - min(hours) <= 1


def test_event_names_follow_the_sizing_models_mix_with_meter_values_the_most() -> None:
    counts = Counter(event_names(10_000))
    assert {name: round(counts[name] / 100) for name, _share in MIX} == dict(MIX)


def test_a_few_deliveries_fail_once_a_few_fail_for_good_and_every_retry_is_delivered() -> None:
    ids = new_ids("dlv", 100_000)
    first = Counter(outcome_of(delivery_id, 1) for delivery_id in ids)
    assert first[DeliveryStatus.PENDING] / len(ids) == pytest.approx(RETRY_SHARE, rel=0.1)
    assert first[DeliveryStatus.FAILED] / len(ids) == pytest.approx(FAILED_SHARE, rel=0.3)
    assert {outcome_of(delivery_id, 2) for delivery_id in ids} == {DeliveryStatus.DELIVERED}


def _claimed(delivery_id: str, attempt_count: int) -> ClaimedDelivery:
    return ClaimedDelivery(
        delivery_id, "evt_1", "sub_1", "HardwareStatusNotification", attempt_count, None, b"{}", None, AT
    )


def test_a_retried_attempt_is_recorded_as_the_dispatcher_does_with_its_next_try_due_later() -> None:
    retried = next(
        delivery_id for delivery_id in new_ids("dlv", 10_000) if outcome_of(delivery_id, 1) is DeliveryStatus.PENDING
    )
    record = record_for(_claimed(retried, 0), "att_1", AT)
    assert (record.attempt.outcome, record.attempt.status_code, record.worker_id) == ("retry", 503, WORKER)
    assert record.next_attempt_at is not None
    assert record.next_attempt_at > AT
    again = record_for(_claimed(retried, 1), "att_2", record.next_attempt_at)
    assert (again.attempt.number, again.status, again.next_attempt_at) == (2, DeliveryStatus.DELIVERED, None)


def _day(day: int, size_mib: int, publish_eps: float) -> dict[str, Any]:
    return {
        "day": day,
        "size_bytes": size_mib * 2**20,
        "publish_eps": publish_eps,
        "delivery_ps": publish_eps / 2,
        "expiry_s": 1.0,
        "expire_s": 0.5,
        "removed": {"events": 10, "deliveries": 20, "attempts": 21},
        "rows": {"events": 100, "deliveries": 200, "attempts": 210},
    }


def test_steady_figures_compare_day_one_with_the_days_after_the_retention_and_measure_growth() -> None:
    days = [_day(day, min(day, 30) * 10 + (day > 30), 1000.0 if day == 1 else 900.0) for day in range(1, 36)]
    figures = steady_figures(days)
    assert figures["publish_eps_day1"] == 1000.0
    assert figures["publish_eps_steady"] == 900.0
    assert (figures["publish_eps_best_early"], figures["publish_eps_best_steady"]) == (1000.0, 900.0)
    assert figures["growth_steady"] == 1.0


def test_the_markdown_table_shows_chosen_days_and_the_last_with_the_rows_removed() -> None:
    table = markdown_table({"sqlite": {"days": [_day(day, day, 100.0) for day in range(1, 34)]}})
    rows = [line for line in table.splitlines() if line.startswith("| sqlite")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2", "5", "10", "20", "29", "30", "31", "32", "33"]
    assert rows[-1].endswith("| 1.00 (0.50) | 51 |")
