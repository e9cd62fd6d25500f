"""The event catalog: every event type with its schema, example and description, and validation."""

from chargewire.catalog.event_type import EventType, load_event_types
from chargewire.catalog.suggestions import closest_event_names
from chargewire.catalog.validation import (
    event_type_of,
    field_path,
    validate,
    validated_event_type,
)

__all__ = [
    "EventType",
    "closest_event_names",
    "event_type_of",
    "field_path",
    "load_event_types",
    "validate",
    "validated_event_type",
]
