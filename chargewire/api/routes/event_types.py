"""The event catalog over HTTP: `GET /api/v1/event-types`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from chargewire.catalog import EventType, load_event_types
from chargewire.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["event types"])


class EventTypeOut(BaseModel):
    """One event type as the API shows it."""

    name: str
    group: str
    description: str
    deprecated: bool
    operational: bool = Field(description="Sent by chargewire itself; cannot be published")
    successors: list[str]
    entity: str | None
    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]

    model_config = {"populate_by_name": True, "serialize_by_alias": True}

    @classmethod
    def of(cls, event_type: EventType) -> EventTypeOut:
        """The API view of a catalog entry."""
        return cls.model_validate(
            {
                "name": event_type.name,
                "group": event_type.group,
                "description": event_type.description,
                "deprecated": event_type.deprecated,
                "operational": event_type.operational,
                "successors": list(event_type.successors),
                "entity": event_type.entity_kind,
                "schema": event_type.schema,
                "example": event_type.example,
            }
        )


class EventTypeList(BaseModel):
    """Every event type the service accepts."""

    data: list[EventTypeOut]


@router.get("/event-types", response_model=EventTypeList, response_model_by_alias=True)
async def list_event_types() -> EventTypeList:
    """Every event type with its JSON Schema, an example payload and its deprecation."""
    return EventTypeList(data=[EventTypeOut.of(event_type) for event_type in load_event_types().values()])


@router.get("/event-types/{name}", response_model=EventTypeOut, responses={404: {"description": "Unknown"}})
async def get_event_type(name: str) -> EventTypeOut:
    """One event type."""
    event_type = load_event_types().get(name)
    if event_type is None:
        raise NotFound(f"No event type {name!r}.")
    return EventTypeOut.of(event_type)
