"""The catalog's record of one event type and how it is loaded from the package's JSON files."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventType:
    """One notification the service can carry, with its JSON Schema and an example that validates."""

    name: str
    deprecated: bool
    successors: tuple[str, ...]
    schema: JsonObject
    example: JsonObject
    group: str
    description: str
    entity_kind: str | None
    entity_path: tuple[str, ...] | None
    in_original_list: bool
    operational: bool = False

    def entity_id(self, payload: JsonObject) -> str | None:
        """The id of the entity this payload is about, as text, or None when the payload lacks it."""
        if self.entity_path is None:
            return None
        node: Any = payload
        for key in self.entity_path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        # A tuple, not `dict | list`, which would build a new union object on every call.
        if node is None or isinstance(node, (dict, list)):
            return None
        return str(node)


def _read_json(filename: str) -> JsonObject:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    data: JsonObject = json.loads(text)
    return data


def to_json_schema(node: Any) -> Any:
    """Turn the OpenAPI flavour (`nullable: true`) into plain JSON Schema that admits null there."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items() if key not in ("nullable", "readOnly")}
    if node.get("nullable") is True:
        if isinstance(converted.get("type"), str):
            converted["type"] = [converted["type"], "null"]
        if isinstance(converted.get("enum"), list) and None not in converted["enum"]:
            converted["enum"] = [*converted["enum"], None]
    return converted


@cache
def load_event_types() -> dict[str, EventType]:
    """Every event type in catalog order: the 30 of the original list, the 9 others of the same API, then
    chargewire's own operational events."""
    source = _read_json("event-schemas.json")
    notes = _read_json("annotations.json")
    event_types: dict[str, EventType] = {}
    for section, in_original in (("events", True), ("other_events_in_the_same_api", False)):
        for name, entry in source[section].items():
            note = notes[name]
            entity = note.get("entity")
            event_types[name] = EventType(
                name=name,
                deprecated=bool(entry.get("deprecated", False)),
                successors=tuple(note.get("successor", [])),
                schema=to_json_schema(copy.deepcopy(entry["schema"])),
                example=note["example"],
                group=note["group"],
                description=note["description"],
                entity_kind=entity["kind"] if entity else None,
                entity_path=tuple(entity["path"]) if entity else None,
                in_original_list=in_original,
            )
    for name, entry in _read_json("operational-events.json")["events"].items():
        entity = entry["entity"]
        event_types[name] = EventType(
            name=name,
            deprecated=False,
            successors=(),
            schema=to_json_schema(entry["schema"]),
            example=entry["example"],
            group=entry["group"],
            description=entry["description"],
            entity_kind=entity["kind"],
            entity_path=tuple(entity["path"]),
            in_original_list=False,
            operational=True,
        )
    return event_types
