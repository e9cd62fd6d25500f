"""The catalog validates every event's example and names the field path of every error."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from chargewire.catalog import EventType, closest_event_names, load_event_types, validate, validation
from chargewire.errors import UnknownEventType, ValidationFailed

EVENT_TYPES = list(load_event_types().values())
NAMES = [event_type.name for event_type in EVENT_TYPES]
_WRONG_VALUE_FOR_TYPE: dict[str, Any] = {
    "string": 12345,
    "integer": "not-a-number",
    "number": "not-a-number",
    "boolean": "yes",
    "array": {"not": "a list"},
    "object": 7,
}


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    """Top-level properties, including those of `allOf` parts (installerJob.changed is built that way)."""
    merged = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        merged |= _properties(part)
    return merged


def _enum_paths(schema: dict[str, Any], value: Any, path: list[str | int]) -> list[list[str | int]]:
    """Paths (into `value`) of fields whose schema is an enum, excluding `notification`."""
    found: list[list[str | int]] = []
    if "enum" in schema and path and path != ["notification"]:
        found.append(path)
    if isinstance(value, dict):
        for key, child in _properties(schema).items():
            if key in value:
                found += _enum_paths(child, value[key], [*path, key])
    if isinstance(value, list) and value and isinstance(schema.get("items"), dict):
        found += _enum_paths(schema["items"], value[0], [*path, 0])
    return found


def _set(payload: dict[str, Any], path: list[str | int], new_value: Any) -> None:
    node: Any = payload
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new_value


def _path_text(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path)


def _rejected_fields(payload: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as failure:
        validate(payload)
    return failure.value.errors


def test_catalog_holds_the_thirty_events_the_nine_others_and_chargewires_own() -> None:
    platform = [event_type for event_type in EVENT_TYPES if not event_type.operational]
    assert len(platform) == 39
    assert sum(event_type.in_original_list for event_type in platform) == 30
    assert [event_type.name for event_type in EVENT_TYPES if event_type.operational] == ["subscription.disabled"]


def test_deprecated_events_name_their_successors() -> None:
    catalog = load_event_types()
    assert catalog["ChargePointChangedNotification"].successors == ("chargePoint.changed", "evse.changed")
    assert catalog["SessionStartStopNotification"].successors == ("session.start.stop.notification",)
    assert catalog["user.subscriptionChanged"].successors == ("user.subscription.changed",)
    for event_type in EVENT_TYPES:
        assert all(successor in catalog for successor in event_type.successors)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=NAMES)
def test_every_example_validates(event_type: EventType) -> None:
    assert validate(event_type.example) == event_type.name


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=NAMES)
def test_missing_required_field_is_named(event_type: EventType) -> None:
    required = [field for field in event_type.schema.get("required", []) if field != "notification"]
    payload = copy.deepcopy(event_type.example)
    if not required:
        payload.pop("notification")
        assert "notification" in _rejected_fields(payload)
        return
    payload.pop(required[0])
    assert _rejected_fields(payload) == {required[0]: ["This field is required."]}


@pytest.mark.parametrize(
    "event_type", [t for t in EVENT_TYPES if len(t.schema.get("required", [])) > 2], ids=lambda t: t.name
)
def test_each_of_several_missing_required_fields_is_named_once(event_type: EventType) -> None:
    required = [field for field in event_type.schema["required"] if field != "notification"]
    payload = {key: value for key, value in event_type.example.items() if key not in required}
    assert _rejected_fields(payload) == {field: ["This field is required."] for field in required}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=NAMES)
def test_wrong_type_is_named(event_type: EventType) -> None:
    properties = _properties(event_type.schema)
    field = next(name for name, schema in properties.items() if name != "notification" and _types(schema))
    payload = copy.deepcopy(event_type.example)
    payload[field] = _WRONG_VALUE_FOR_TYPE[_types(properties[field])[0]]
    errors = _rejected_fields(payload)
    assert list(errors) == [field]
    assert errors[field][0].startswith("Must be of type")


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=NAMES)
def test_unknown_enum_value_is_named(event_type: EventType) -> None:
    payload = copy.deepcopy(event_type.example)
    paths = _enum_paths(event_type.schema, payload, [])
    if not paths:  # the event's only enum is its name
        payload["notification"] = "NoSuchNotification"
        with pytest.raises(UnknownEventType):
            validate(payload)
        return
    _set(payload, paths[0], "definitely-not-an-allowed-value")
    errors = _rejected_fields(payload)
    assert list(errors) == [_path_text(paths[0])]
    assert "is not one of the allowed values" in errors[_path_text(paths[0])][0]


def test_nested_errors_name_the_path_with_indexes() -> None:
    payload = copy.deepcopy(load_event_types()["SessionMeterValuesNotification"].example)
    payload["meterValues"][0]["value"] = "lots"
    assert list(_rejected_fields(payload)) == ["meterValues.0.value"]


def test_unknown_event_name_suggests_the_closest_known_names() -> None:
    with pytest.raises(UnknownEventType) as failure:
        validate({"notification": "BootNotifcation", "chargePointId": 1})
    assert "Did you mean: BootNotification" in failure.value.errors["notification"][0]


def test_closest_names_ignore_case() -> None:
    assert closest_event_names("sessionupdatenotification")[0] == "SessionUpdateNotification"


@pytest.mark.parametrize("payload", [[], "text", 3, None])
def test_a_payload_that_is_not_an_object_is_rejected(payload: object) -> None:
    with pytest.raises(ValidationFailed) as failure:
        validate(payload)
    assert "(payload)" in failure.value.errors


def test_missing_notification_field_is_named() -> None:
    with pytest.raises(ValidationFailed) as failure:
        validate({"chargePointId": 1})
    assert list(failure.value.errors) == ["notification"]


def test_nullable_fields_accept_null() -> None:
    payload = copy.deepcopy(load_event_types()["BootNotification"].example)
    payload["bootNotification"]["firmware_version"] = None
    assert validate(payload) == "BootNotification"


def test_a_value_json_cannot_hold_is_named_by_the_detailed_validator() -> None:
    payload = copy.deepcopy(load_event_types()["SessionMeterValuesNotification"].example)
    payload["meterValues"][0]["value"] = datetime.now(UTC)
    assert list(_rejected_fields(payload)) == ["meterValues.0.value"]


class _RefusingValidator:
    """A fast validator that refuses what jsonschema accepts: a disagreement between the two."""

    def is_valid(self, payload: object) -> bool:
        return False

    def iter_errors(self, payload: object) -> Iterator[SimpleNamespace]:
        yield SimpleNamespace(instance_path=["meterValues", 0, "value"], message="weird number")


def test_what_the_fast_validator_refuses_is_never_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "_compiled", lambda _name: _RefusingValidator())
    payload = copy.deepcopy(load_event_types()["SessionMeterValuesNotification"].example)
    assert _rejected_fields(payload) == {"meterValues.0.value": ["Weird number."]}
