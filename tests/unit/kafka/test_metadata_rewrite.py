"""Metadata responses of every version librdkafka may negotiate, relocated byte for byte, and the frames around them."""

from __future__ import annotations

import struct

import pytest

from chargewire.kafka.frames import RequestWatch, ResponseRewrite
from chargewire.kafka.metadata_rewrite import MAX_VERSION, UnreadableResponse, rewrite_metadata

Broker = tuple[int, str, int, str | None]
ADVERTISED: list[Broker] = [(1, "broker-1.internal.example", 9092, "rack-a"), (2, "10.0.0.7", 19092, None)]
# What follows the brokers (cluster id, controller, topics...): never read, so any bytes must come out unchanged.
REST = bytes(range(256)) * 3


def uvarint(value: int) -> bytes:
    """An unsigned varint, as flexible versions encode lengths."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes([*out, value])


def string(value: str | None, flexible: bool) -> bytes:
    """A (nullable) string in the encoding of the version."""
    if value is None:
        return uvarint(0) if flexible else struct.pack(">h", -1)
    data = value.encode()
    return (uvarint(len(data) + 1) if flexible else struct.pack(">h", len(data))) + data


def metadata_response(version: int, brokers: list[Broker], correlation_id: int = 77, tags: bytes = b"\x00") -> bytes:
    """A Metadata response body (without its size) as a broker would write it."""
    flexible = version >= 9
    out = struct.pack(">i", correlation_id) + (tags if flexible else b"")
    if version >= 3:
        out += struct.pack(">i", 250)  # throttle_time_ms
    out += uvarint(len(brokers) + 1) if flexible else struct.pack(">i", len(brokers))
    for node_id, host, port, rack in brokers:
        out += struct.pack(">i", node_id) + string(host, flexible) + struct.pack(">i", port)
        if version >= 1:
            out += string(rack, flexible)
        if flexible:
            out += tags
    return out + REST


def to_listener(host: str, port: int) -> tuple[str, int]:
    """A relocation that gives each advertised broker a loopback port of its own."""
    return "127.0.0.1", 40000 + port % 1000


@pytest.mark.parametrize("version", range(MAX_VERSION + 1))
def test_every_metadata_version_is_rewritten_to_the_listeners_and_the_rest_is_kept(version: int) -> None:
    body = metadata_response(version, ADVERTISED)

    rewritten = rewrite_metadata(body, version, to_listener)

    relocated = [(node, *to_listener(host, port), rack) for node, host, port, rack in ADVERTISED]
    assert rewritten == metadata_response(version, relocated)


@pytest.mark.parametrize("version", [9, 12, 13])
def test_tagged_fields_of_flexible_versions_are_copied_as_they_were(version: int) -> None:
    tags = uvarint(1) + uvarint(5) + uvarint(3) + b"abc"  # one unknown tag, 3 bytes
    body = metadata_response(version, ADVERTISED, tags=tags)

    rewritten = rewrite_metadata(body, version, to_listener)

    relocated = [(node, *to_listener(host, port), rack) for node, host, port, rack in ADVERTISED]
    assert rewritten == metadata_response(version, relocated, tags=tags)


@pytest.mark.parametrize("version", [0, 5, 12])
def test_a_response_cut_short_is_refused_not_passed_on(version: int) -> None:
    body = metadata_response(version, ADVERTISED)
    cut = body[: body.index(b"10.0.0.7") + 3]

    with pytest.raises(UnreadableResponse):
        rewrite_metadata(cut, version, to_listener)


def test_a_version_newer_than_the_connector_reads_is_refused() -> None:
    with pytest.raises(UnreadableResponse):
        rewrite_metadata(metadata_response(MAX_VERSION, ADVERTISED), MAX_VERSION + 1, to_listener)


def request(api_key: int, version: int, correlation_id: int, payload: bytes = b"client") -> bytes:
    """A request frame: size, api key, version, correlation id, then the rest."""
    body = struct.pack(">hhi", api_key, version, correlation_id) + payload
    return struct.pack(">i", len(body)) + body


def frame(body: bytes) -> bytes:
    """A frame around `body`."""
    return struct.pack(">i", len(body)) + body


def test_only_the_response_to_a_metadata_request_is_rewritten_however_the_bytes_are_split() -> None:
    watch = RequestWatch()
    rewrite = ResponseRewrite(watch, to_listener)
    produce_response = frame(struct.pack(">i", 41) + b"produce response, untouched " * 4000)
    metadata = frame(metadata_response(12, ADVERTISED, correlation_id=42))
    stream = produce_response + metadata + produce_response

    watch.feed(request(0, 9, 41, b"x" * 5000)[:7])
    watch.feed(request(0, 9, 41, b"x" * 5000)[7:] + request(3, 12, 42))
    passed = b"".join(
        part for offset in range(0, len(stream), 1000) for part in rewrite.feed(stream[offset : offset + 1000])
    )

    relocated = [(node, *to_listener(host, port), rack) for node, host, port, rack in ADVERTISED]
    assert passed == produce_response + frame(metadata_response(12, relocated, correlation_id=42)) + produce_response


@pytest.mark.parametrize("api_key", [10, 60], ids=["FindCoordinator", "DescribeCluster"])
def test_a_request_for_brokers_the_connector_does_not_relocate_is_refused(api_key: int) -> None:
    with pytest.raises(UnreadableResponse):
        RequestWatch().feed(request(api_key, 4, 1))


@pytest.mark.parametrize("chunk", [1, 3, 7, 12, 13, 4096])
def test_metadata_requests_are_noted_wherever_the_reads_cut_the_stream(chunk: int) -> None:
    watch = RequestWatch()
    raw_sasl_token = frame(b"\x00user")  # shorter than a request header: passed over
    stream = request(0, 9, 41, b"x" * 5000) + raw_sasl_token + request(3, 12, 42) + request(3, 13, 43)

    for offset in range(0, len(stream), chunk):
        watch.feed(stream[offset : offset + chunk])

    assert watch.metadata_versions == {42: 12, 43: 13}
