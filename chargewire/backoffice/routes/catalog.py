"""The event catalog: every event with its description, schema and example."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargewire.backoffice.guards import Operator
from chargewire.backoffice.rendering import render
from chargewire.catalog import EventType, load_event_types

router = APIRouter()


def event_groups() -> list[tuple[str, list[EventType]]]:
    """The catalog's events by group, groups in the order their first event appears."""
    groups: dict[str, list[EventType]] = {}
    for event_type in load_event_types().values():
        groups.setdefault(event_type.group, []).append(event_type)
    return list(groups.items())


@router.get("/catalog")
async def catalog_page(request: Request, _: Operator) -> Response:
    """Every event type the service accepts."""
    return render(request, "catalog.html", groups=event_groups(), count=len(load_event_types()))
