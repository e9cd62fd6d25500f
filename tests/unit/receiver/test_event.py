"""Verified bodies become the typed payload of their notification name; unknown names are kept, not refused."""

from __future__ import annotations

import json

import pytest

from chargewire.catalog import load_event_types
from chargewire.receiver import EVENT_TYPES, MalformedEvent, UnknownEvent, parse_event


@pytest.mark.parametrize("name", list(load_event_types()))
def test_every_catalog_example_parses_as_its_own_event_type(name: str) -> None:
    event = parse_event(json.dumps(load_event_types()[name].example))
    assert not isinstance(event, UnknownEvent)
    assert event["notification"] == name


def test_every_catalog_event_has_a_payload_type() -> None:
    assert set(EVENT_TYPES) == set(load_event_types())


def test_an_unknown_notification_name_is_kept_as_an_unknown_event() -> None:
    event = parse_event(b'{"notification": "charger.teleported", "chargePointId": 7}')
    assert event == UnknownEvent("charger.teleported", {"notification": "charger.teleported", "chargePointId": 7})


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"chargePointId": 7}', b'{"notification": 3}'])
def test_a_body_without_a_notification_name_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(body)
