"""Lower id bounds: they let PostgreSQL skip the day partitions a query cannot need (ids are time-ordered).

A bound drawn from another row's id or time is moved back by MARGIN: ids are made by several processes, on
machines whose clocks may differ, and a little before their rows are written (a Kafka stream's delivery ids at
its read, its rows at the batch's record; an event's id before the publishing transaction numbers it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, ColumnElement, true

from chargewire.ids import first_id_at, has_prefix, made_at_ms

MARGIN = timedelta(days=1)
_MARGIN_MS = int(MARGIN.total_seconds() * 1000)


def made_since(column: Column[str], prefix: str, moment: datetime) -> ColumnElement[bool]:
    """`column` holds an id made at `moment` or later, less the margin."""
    return column >= first_id_at(prefix, int(moment.timestamp() * 1000) - _MARGIN_MS)


def made_until(column: Column[str], prefix: str, moment: datetime) -> ColumnElement[bool]:
    """`column` holds an id made at `moment` or earlier, plus the margin."""
    return column < first_id_at(prefix, int(moment.timestamp() * 1000) + _MARGIN_MS)


def made_after_id(column: Column[str], prefix: str, earlier_id: str) -> ColumnElement[bool]:
    """`column` holds an id made after `earlier_id` was, less the margin (an attempt after its delivery); no
    bound when `earlier_id` is not an id (a lookup of an unknown one finds nothing either way)."""
    if not has_prefix(earlier_id, earlier_id.partition("_")[0]):
        return true()
    return column >= first_id_at(prefix, made_at_ms(earlier_id) - _MARGIN_MS)
