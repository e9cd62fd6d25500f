"""Reading JSON request bodies with limits: size (while reading), nesting depth and 64-bit integers.

orjson writes at most 254 levels of nesting and reads integers beyond 64 bits as floats, silently; both are
refused here, by field, before anything is stored.
"""

from __future__ import annotations

import json

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect

from chargewire.api.errors import BadRequest
from chargewire.errors import ValidationFailed

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Any integer beyond 64 bits has 19 digits or more; the exact parse runs only for bodies with such a run. Found by
# mapping every digit to 0 and searching for 19 zeros: two C passes, some ten times as fast as a regex `\d{19}`,
# which tries a match at every digit of a batch.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
_CONTAINERS = (dict, list)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body's bytes; 413 past `max_bytes`, counted while reading (the declared size is the guard's to check)."""
    chunks = bytearray()
    # Read from `receive` as `Request.stream` would, without its async generator (five calls more a request, and
    # the loop's bookkeeping of each generator): most bodies arrive in one message.
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message["type"] == "http.request":
            chunks.extend(message.get("body", b""))
            if len(chunks) > max_bytes:
                raise body_too_large(max_bytes)
            more = bool(message.get("more_body"))
    return bytes(chunks)


def json_body(raw: bytes, max_depth: int) -> object:
    """The JSON document of a whole body; 400 for an empty one, and as `parse_json` says."""
    if not raw:
        raise BadRequest("The request body is empty; send a JSON event or a JSON array of events.")
    return parse_json(raw, max_depth)


def body_too_large(max_bytes: int) -> BadRequest:
    """The 413 for a body over its limit."""
    return BadRequest(f"The request body is larger than the limit of {max_bytes} bytes.", status_code=413)


def parse_json(raw: bytes, max_depth: int) -> object:
    """The JSON document in `raw`; 400 when it is not JSON, 422 naming the field nested too deep or too large."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep("(body)", max_depth) from exc
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
    # Counting brackets is cheap; only a body with more containers than the limit can nest past it.
    if raw.count(b"[") + raw.count(b"{") > max_depth and _nests_deeper_than(document, max_depth):
        _check_depth(document, [], max_depth, max_depth)
    if _LONG_RUN in raw.translate(_DIGITS_AS_ZERO):
        _check_integers(json.loads(raw), [])
    return document


def _nests_deeper_than(document: object, max_depth: int) -> bool:
    """Whether `document` holds containers more than `max_depth` levels deep.

    Level by level, looking only at containers and building no paths: a batch of events has many more containers
    than the limit, and the walk that names the field (`_check_depth`) cost as much as parsing the body.
    """
    level = [document] if isinstance(document, _CONTAINERS) else []
    for _ in range(max_depth):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, _CONTAINERS)
        ]
        if not level:
            return False
    return True


def _too_deep(field: str, max_depth: int) -> ValidationFailed:
    return ValidationFailed({field: [f"JSON may nest at most {max_depth} levels."]})


def _children(node: object) -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [(str(key), value) for key, value in node.items()]
    if isinstance(node, list):
        return [(str(index), value) for index, value in enumerate(node)]
    return []


def _field(path: list[str]) -> str:
    return ".".join(path) or "(body)"


def _check_depth(node: object, path: list[str], levels_left: int, max_depth: int) -> None:
    if not isinstance(node, dict | list):
        return
    if levels_left == 0:
        raise _too_deep(_field(path), max_depth)
    for key, child in _children(node):
        _check_depth(child, [*path, key], levels_left - 1, max_depth)


def _check_integers(node: object, path: list[str]) -> None:
    if isinstance(node, int) and not isinstance(node, bool) and not _INT64_MIN <= node <= _INT64_MAX:
        raise ValidationFailed({_field(path): ["Integers must fit in 64 bits (-2^63 to 2^63-1)."]})
    for key, child in _children(node):
        _check_integers(child, [*path, key])
