"""Id bounds: an id made before a moment, less the margin, is outside; one made up to the margin before, inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import column

from chargewire.ids import first_id_at
from chargewire.store.id_bounds import MARGIN, made_after_id, made_since, made_until

AT = datetime(2027, 3, 1, 12, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _bound(condition: object) -> str:
    return str(condition.right.value)  # type: ignore[attr-defined]


def test_made_since_reaches_back_by_the_margin_and_no_further() -> None:
    bound = _bound(made_since(column("id"), "dlv", AT))
    assert first_id_at("dlv", _ms(AT - MARGIN - timedelta(milliseconds=1))) < bound
    assert bound <= first_id_at("dlv", _ms(AT - MARGIN))


def test_made_until_reaches_forward_by_the_margin() -> None:
    assert _bound(made_until(column("id"), "dlv", AT)) == first_id_at("dlv", _ms(AT + MARGIN))


def test_an_attempt_bound_follows_its_deliverys_id_less_the_margin() -> None:
    delivery = first_id_at("dlv", _ms(AT))
    assert _bound(made_after_id(column("id"), "att", delivery)) == first_id_at("att", _ms(AT - MARGIN))


def test_a_malformed_id_gives_no_bound() -> None:
    assert str(made_after_id(column("id"), "att", "dlv_not-an-id")) == "true"
