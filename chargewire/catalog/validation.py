"""Validation of event payloads against the catalog, with errors that name the field path.

Two validators share each schema: a compiled one in Rust (jsonschema-rs) answers "valid?" for the common
case (1.2 µs for a 1 KB meter-values event, where fastjsonschema took 6 and jsonschema far more), and only a
payload it rejects goes through jsonschema, which reports every error with its path. Formats are not checked
by either: the original platform sends some dates as "YYYY-MM-DD hh:mm:ss" under a `date-time` format.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import cache
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from chargewire.catalog.event_type import EventType, load_event_types
from chargewire.catalog.suggestions import closest_event_names
from chargewire.errors import UnknownEventType, ValidationFailed

if TYPE_CHECKING:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import ValidationError

NOTIFICATION_FIELD = "notification"


@cache
def _validator(name: str) -> Draft7Validator:
    # Only a rejected payload needs jsonschema (~0.1 s to import): a process that validates none never loads it.
    from jsonschema import Draft7Validator

    return Draft7Validator(load_event_types()[name].schema)


@cache
def _compiled(name: str) -> jsonschema_rs.Draft7Validator:
    return jsonschema_rs.Draft7Validator(load_event_types()[name].schema, validate_formats=False)


def field_path(error: ValidationError, nth_missing: int = 0) -> str:
    """The dotted path of the field an error is about: `meterValues.0.measurand`, as the API's other errors.

    jsonschema reports each missing field as its own error on the parent, in the order of `required`, without
    naming it: the parent's `nth_missing` required error is about its `nth_missing` missing field.
    """
    path = list(error.absolute_path)
    instance: Any = error.instance
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [field for field in error.validator_value if field not in (instance or {})]
        if missing:
            path.append(missing[min(nth_missing, len(missing) - 1)])
    return _dotted(path)


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) or "(payload)"


def _describe(error: ValidationError) -> str:
    if error.validator == "required":
        return "This field is required."
    if error.validator == "enum":
        allowed_values: Any = error.validator_value
        allowed = ", ".join(repr(value) for value in allowed_values)
        return f"{error.instance!r} is not one of the allowed values: {allowed}."
    if error.validator == "type":
        expected: Any = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        return f"Must be of type {expected_text}, got {_json_type(error.instance)}."
    message = str(error.message)
    return message[0].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def event_type_of(payload: object) -> EventType:
    """The catalog entry named by the payload's `notification` field, or a validation error saying why not."""
    if not isinstance(payload, dict):
        raise ValidationFailed({"(payload)": [f"Must be a JSON object, got {_json_type(payload)}."]})
    name = payload.get(NOTIFICATION_FIELD)
    if name is None:
        raise ValidationFailed({NOTIFICATION_FIELD: ["This field is required: it names the event type."]})
    if not isinstance(name, str):
        raise ValidationFailed({NOTIFICATION_FIELD: [f"Must be of type string, got {_json_type(name)}."]})
    event_types = load_event_types()
    if name not in event_types:
        suggestions = closest_event_names(name)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise UnknownEventType({NOTIFICATION_FIELD: [f"Unknown event type {name!r}.{hint}"]})
    return event_types[name]


def validate(payload: object) -> str:
    """Check a payload against its event's schema and return the event name.

    Raises ValidationFailed whose `errors` map each offending field path to what is wrong with it.
    """
    return validated_event_type(payload).name


def validated_event_type(payload: object) -> EventType:
    """Check a payload against its event's schema and return its catalog entry (raises like `validate`)."""
    event_type = event_type_of(payload)
    try:
        fast_verdict: bool | None = _compiled(event_type.name).is_valid(payload)
    except ValueError:
        fast_verdict = None  # a value JSON cannot hold (a datetime from a Python caller): jsonschema decides
    if fast_verdict:
        return event_type
    errors = _detailed_errors(event_type.name, payload)
    if errors:
        raise ValidationFailed(errors)
    if fast_verdict is False:
        # The two validators disagree; never accept what the fast one refused, and say what it saw.
        raise ValidationFailed(_fast_errors(event_type.name, payload))
    return event_type


def _detailed_errors(name: str, payload: object) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = defaultdict(list)
    missing_named: Counter[tuple[str | int, ...]] = Counter()
    # A stable sort: each parent's required errors keep the order of its `required` list.
    for error in sorted(_validator(name).iter_errors(payload), key=lambda e: [str(p) for p in e.absolute_path]):
        nth_missing = 0
        if error.validator == "required":
            nth_missing = missing_named[tuple(error.absolute_path)]
            missing_named[tuple(error.absolute_path)] += 1
        errors[field_path(error, nth_missing)].append(_describe(error))
    return errors


def _fast_errors(name: str, payload: object) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = defaultdict(list)
    for error in _compiled(name).iter_errors(payload):
        errors[_dotted(list(error.instance_path))].append(error.message[0].upper() + error.message[1:] + ".")
    return errors
