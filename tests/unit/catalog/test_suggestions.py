"""Suggestions for an unknown event name: the typo's neighbour, or the event the name's words point to."""

from __future__ import annotations

import pytest

from chargewire.catalog import closest_event_names


@pytest.mark.parametrize(
    ("unknown", "meant"),
    [("SessionUpdateNotifcation", "SessionUpdateNotification"), ("evse.change", "evse.changed")],
)
def test_a_typo_suggests_its_lexical_neighbour_first(unknown: str, meant: str) -> None:
    assert closest_event_names(unknown)[0] == meant


@pytest.mark.parametrize(
    ("unknown", "meant"),
    [("ChargePointBooted", "BootNotification"), ("StartTransaction", "SessionStartStopNotification")],
)
def test_an_ocpp_like_name_suggests_the_event_derived_from_that_message(unknown: str, meant: str) -> None:
    assert closest_event_names(unknown)[0] == meant


def test_a_name_with_nothing_in_common_suggests_nothing() -> None:
    assert closest_event_names("zzzqqq") == []
