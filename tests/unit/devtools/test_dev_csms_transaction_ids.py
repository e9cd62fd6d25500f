"""The dev CSMS started again gives transaction ids above its earlier runs', within 32 bits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chargewire.devtools import csms


def test_a_dev_csms_started_a_second_later_begins_ten_ids_above_the_earlier_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = datetime(2026, 12, 5, 19, 0, tzinfo=UTC).timestamp()
    monkeypatch.setattr(csms.time, "time", lambda: started)
    first_run = csms.first_id_from_clock()
    monkeypatch.setattr(csms.time, "time", lambda: started + 1)
    assert csms.first_id_from_clock() == first_run + 10


def test_dev_csms_transaction_ids_fit_the_32_bit_integers_of_1_6_charge_points_until_2031(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csms.time, "time", lambda: datetime(2031, 6, 30, tzinfo=UTC).timestamp())
    assert 0 < csms.first_id_from_clock() < 2**31
