"""Rewrites the broker addresses in Kafka Metadata responses, so librdkafka dials only the connector's listeners.

A Metadata response (api key 3) starts with the brokers the cluster advertises: node id, host, port and, from
v1, a nullable rack. Only that array is read; the response header before it and everything after it (cluster
id, controller, topics, tagged fields) are copied byte for byte. Layout by version:

| versions | header                              | before brokers   | strings, arrays and per-broker tags       |
|----------|-------------------------------------|------------------|-------------------------------------------|
| 0-2      | correlation id                      | nothing          | int16-length strings, int32-length arrays |
| 3-8      | correlation id                      | throttle_time_ms | as above                                  |
| 9-13     | correlation id, tagged fields (v1)  | throttle_time_ms | compact (unsigned varint length + 1);     |
|          |                                     |                  | each broker ends with tagged fields       |

A version above `MAX_VERSION`, or bytes that do not parse as the layout above, raise `UnreadableResponse`: the
connector then closes the connection rather than pass on addresses it did not rewrite.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

METADATA_API_KEY = 3
FIRST_FLEXIBLE_VERSION = 9
MAX_VERSION = 13
_FIRST_THROTTLE_VERSION = 3
_FIRST_RACK_VERSION = 1
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")

# (host, port) the cluster advertises -> (host, port) librdkafka is to dial instead.
Relocate = Callable[[str, int], tuple[str, int]]


class UnreadableResponse(ValueError):
    """A Metadata response that the connector cannot read, so cannot rewrite."""


def rewrite_metadata(body: bytes, version: int, relocate: Relocate) -> bytes:
    """The response `body` (the frame without its size) with every advertised broker's address relocated."""
    if not 0 <= version <= MAX_VERSION:
        raise UnreadableResponse(f"Metadata version {version} is not one the connector reads")
    flexible = version >= FIRST_FLEXIBLE_VERSION
    reader = _Reader(body)
    reader.skip(4)  # correlation id
    if flexible:
        reader.skip_tagged_fields()
    if version >= _FIRST_THROTTLE_VERSION:
        reader.skip(4)
    prefix_end = reader.position
    writer = _Writer(flexible)
    count = reader.array_length(flexible)
    writer.array_length(count)
    for _ in range(count):
        node_id = reader.int32()
        host = reader.string(flexible)
        if host is None:
            raise UnreadableResponse("a broker without a host")
        new_host, new_port = relocate(host, reader.int32())
        writer.int32(node_id)
        writer.string(new_host)
        writer.int32(new_port)
        if version >= _FIRST_RACK_VERSION:
            start = reader.position
            reader.string(flexible)  # rack, copied as it was
            writer.raw(body[start : reader.position])
        if flexible:
            start = reader.position
            reader.skip_tagged_fields()
            writer.raw(body[start : reader.position])
    return body[:prefix_end] + writer.getvalue() + body[reader.position :]


class _Reader:
    """A cursor over one response; every read checks it stays inside the bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.position = 0

    def skip(self, size: int) -> None:
        if size < 0 or self.position + size > len(self._data):
            raise UnreadableResponse("the response ends early")
        self.position += size

    def int32(self) -> int:
        start = self.position
        self.skip(4)
        return int(_INT32.unpack_from(self._data, start)[0])

    def int16(self) -> int:
        start = self.position
        self.skip(2)
        return int(_INT16.unpack_from(self._data, start)[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            if self.position >= len(self._data) or shift > 28:
                raise UnreadableResponse("an unsigned varint that does not end")
            byte = self._data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def array_length(self, flexible: bool) -> int:
        length = self.uvarint() - 1 if flexible else self.int32()
        if length < 0:
            raise UnreadableResponse("a null brokers array")
        return length

    def string(self, flexible: bool) -> str | None:
        length = self.uvarint() - 1 if flexible else self.int16()
        if length < 0:
            return None
        start = self.position
        self.skip(length)
        try:
            return self._data[start : self.position].decode()
        except UnicodeDecodeError as exc:
            raise UnreadableResponse("a string that is not UTF-8") from exc

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.skip(self.uvarint())


class _Writer:
    """The rewritten brokers array, in the encoding of the response's version."""

    def __init__(self, flexible: bool) -> None:
        self._flexible = flexible
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self._parts.append(data)

    def int32(self, value: int) -> None:
        self._parts.append(_INT32.pack(value))

    def array_length(self, count: int) -> None:
        self._parts.append(_uvarint(count + 1) if self._flexible else _INT32.pack(count))

    def string(self, value: str) -> None:
        encoded = value.encode()
        self._parts.append(_uvarint(len(encoded) + 1) if self._flexible else _INT16.pack(len(encoded)))
        self._parts.append(encoded)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
