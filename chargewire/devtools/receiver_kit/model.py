"""The catalog's event schemas as a language-neutral model of named structs, for the type generators.

Each event becomes a struct named after it (`circuit.changed` -> `CircuitChangedEvent`); each nested object
becomes a struct named by its path (`BootNotification` + `bootNotification` -> `BootNotificationBootNotification`),
array items get `Item`. `allOf` parts are merged; objects without properties, `anyOf` and untyped nodes are
kept as free JSON (`any`). Enumerations and formats stay plain strings so that a new value never breaks a
subscriber's parser.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

JsonObject = dict[str, Any]

# Dotted names that would collide once camel-cased; the names of record keep their generated form.
NAME_OVERRIDES = {"user.subscriptionChanged": "UserSubscriptionChangedLegacyEvent"}


@dataclass(frozen=True)
class TypeRef:
    """A field's type: a scalar kind, `array` of `item`, a `struct` by name, or `any` JSON."""

    kind: str
    item: TypeRef | None = None
    struct: str | None = None


@dataclass(frozen=True)
class Field:
    """One property of a struct, with its JSON name."""

    json_name: str
    type: TypeRef
    required: bool
    nullable: bool

    @property
    def optional(self) -> bool:
        """True when a payload may lack the value or carry null."""
        return self.nullable or not self.required


@dataclass
class Struct:
    """A named object type; `event` is the notification name when it is an event's top level."""

    name: str
    fields: list[Field] = field(default_factory=list)
    event: str | None = None


@dataclass
class Catalog:
    """Every struct (events first, in catalog order, each followed by its nested structs)."""

    structs: list[Struct]

    @property
    def events(self) -> list[Struct]:
        """The top-level structs, one per notification name."""
        return [s for s in self.structs if s.event is not None]


def pascal(text: str) -> str:
    """`user.invoiceDetails.changed` -> `UserInvoiceDetailsChanged`; `charge_box_serial` -> `ChargeBoxSerial`."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", text) if p]
    return "".join(p[0].upper() + p[1:] for p in parts)


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name2`, `name3`... when already in `taken`; the answer is added to `taken`."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{n}", n + 1
    taken.add(candidate)
    return candidate


def event_struct_name(event: str) -> str:
    """The type name of an event: its own name when it is one word, else camel-cased with `Event`."""
    if event in NAME_OVERRIDES:
        return NAME_OVERRIDES[event]
    return event if event.isidentifier() else pascal(event) + "Event"


def load_catalog() -> Catalog:
    """The model of every catalog event, from the package's schema files."""
    catalog_files = resources.files("chargewire.catalog")
    source = json.loads(catalog_files.joinpath("event-schemas.json").read_text(encoding="utf-8"))
    operational = json.loads(catalog_files.joinpath("operational-events.json").read_text(encoding="utf-8"))
    schemas = {**source["events"], **source["other_events_in_the_same_api"]}
    schemas = {name: entry["schema"] for name, entry in schemas.items()}
    schemas.update({name: entry["schema"] for name, entry in operational["events"].items()})
    structs: list[Struct] = []
    names: set[str] = set()
    for event, schema in schemas.items():
        name = event_struct_name(event)
        if name in names:
            raise ValueError(f"two events are named {name}; add one to NAME_OVERRIDES")
        names.add(name)
        _struct(name, _merged(schema), structs, event)
    return Catalog(structs)


def _merged(schema: JsonObject) -> JsonObject:
    """One object schema from an `allOf` of object schemas (properties and required lists joined)."""
    if "allOf" not in schema:
        return schema
    merged: JsonObject = {"type": "object", "properties": {}, "required": []}
    for part in schema["allOf"]:
        part = _merged(part)
        merged["properties"].update(part.get("properties", {}))
        merged["required"].extend(part.get("required", []))
    merged["nullable"] = schema.get("nullable", False)
    return merged


def _struct(name: str, schema: JsonObject, structs: list[Struct], event: str | None = None) -> None:
    struct = Struct(name, event=event)
    structs.append(struct)
    required = set(schema.get("required", []))
    for json_name, prop in schema.get("properties", {}).items():
        if not json_name.isidentifier() or keyword.iskeyword(json_name):
            # The Python types use class syntax, which needs identifiers.
            raise ValueError(f"{name}.{json_name}: a property name must be an identifier")
        prop = _merged(prop)
        struct.fields.append(
            Field(
                json_name,
                _type(name + pascal(json_name), prop, structs),
                required=json_name in required,
                nullable=bool(prop.get("nullable", False)),
            )
        )


def _type(path_name: str, schema: JsonObject, structs: list[Struct]) -> TypeRef:
    kind = schema.get("type")
    if kind in ("string", "integer", "number", "boolean"):
        return TypeRef(kind)
    if kind == "array":
        return TypeRef("array", item=_type(path_name + "Item", _merged(schema.get("items", {})), structs))
    if kind == "object" and schema.get("properties"):
        _struct(path_name, schema, structs)
        return TypeRef("struct", struct=path_name)
    return TypeRef("any")
