"""Compiled filters kept per subscription version, so a filter is parsed and compiled once, not per publish."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chargewire.filters.language import Predicate, compile_filter

# Far above any deployment's subscription count; past it the cache starts again rather than grow without end
# (a deleted subscription's entry is otherwise never asked for again).
MAX_ENTRIES = 100_000


class FilterCache:
    """The compiled filter of each subscription at its current version (`updated_at`)."""

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[datetime, Predicate]] = {}

    def get(self, subscription_id: str, version: datetime) -> Predicate | None:
        """The predicate compiled for this version, or None when it was not compiled yet."""
        cached = self._compiled.get(subscription_id)
        return cached[1] if cached is not None and cached[0] == version else None

    def put(self, subscription_id: str, version: datetime, spec: Mapping[str, Any] | None) -> Predicate:
        """Compile `spec` as this version's filter and keep it."""
        if len(self._compiled) >= MAX_ENTRIES:
            self._compiled.clear()
        predicate = compile_filter(dict(spec) if spec else None)
        self._compiled[subscription_id] = (version, predicate)
        return predicate

    def predicate(self, subscription_id: str, version: datetime, spec: Mapping[str, Any] | None) -> Predicate:
        """The compiled filter for this version, compiling it on first use."""
        return self.get(subscription_id, version) or self.put(subscription_id, version, spec)
