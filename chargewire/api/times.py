"""Times given to the API: made aware UTC datetimes, or refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

from chargewire.errors import ValidationFailed


def as_utc(value: datetime | None, field: str) -> datetime | None:
    """`value` in UTC (a time without an offset is taken as UTC); a 422 naming `field` if UTC cannot hold it."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed({field: ["The time is out of range."]}) from exc
