"""Reading a JSON request body with a size limit, with clear errors for bad input."""

from __future__ import annotations

import orjson
from fastapi import Request

from chargewire.api.errors import BadRequest


async def read_json_body(request: Request, max_bytes: int) -> object:
    """The parsed JSON body; 413 past `max_bytes` (checked while reading), 400 for anything unreadable."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"The request body is larger than the limit of {max_bytes} bytes.", status_code=413)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > max_bytes:
            raise BadRequest(f"The request body is larger than the limit of {max_bytes} bytes.", status_code=413)
    if not chunks:
        raise BadRequest("The request body is empty; send a JSON event or a JSON array of events.")
    try:
        return orjson.loads(chunks)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
