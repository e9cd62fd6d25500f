"""Kafka records of a chargewire Kafka subscription carry the webhook headers over the record value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

HeaderValue = bytes | str | None


def record_headers(headers: Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] | None) -> dict[str, str]:
    """A record's headers (as Kafka clients give them: pairs or a mapping, values in bytes) as text for the
    verifier; a repeated header keeps its last value, as Kafka's `lastHeader` does."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return {name: value.decode() if isinstance(value, bytes) else value or "" for name, value in pairs}
