"""The Kafka frames of one proxied connection: requests are watched, Metadata responses rewritten, the rest passed on.

Every Kafka request and response is a frame: an int32 size, then that many bytes. A request starts with its
api key, api version and correlation id; a response with the correlation id of its request. `RequestWatch`
reads each request's first 8 bytes and remembers the Metadata ones by correlation id; `ResponseRewrite` holds a
response whose correlation id it remembers until it is whole, and rewrites its brokers
(`metadata_rewrite`). Every other byte is passed on as it came, without waiting for its frame to end.

Requests for the addresses of other brokers that a producer does not send (FindCoordinator, used by
transactions and consumer groups; DescribeCluster, by admin clients) raise `UnreadableResponse`, so such a
connection closes instead of learning a broker the connector has not relocated.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from chargewire.kafka.metadata_rewrite import METADATA_API_KEY, Relocate, UnreadableResponse, rewrite_metadata

# The largest frame held whole: librdkafka's own default receive.message.max.bytes is 100 MB.
MAX_HELD_FRAME = 100_000_000
_FIND_COORDINATOR = 10
_DESCRIBE_CLUSTER = 60
_UNRELOCATED_APIS = frozenset({_FIND_COORDINATOR, _DESCRIBE_CLUSTER})
_SIZE = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">hhi")
_RESPONSE_HEADER = struct.Struct(">i")

# The first bytes of a frame -> what to do with its whole body, or None to pass it on as it comes.
_Decide = Callable[[bytes], Callable[[bytes], bytes] | None]


class _Frames:
    """Splits a byte stream into frames; a frame is passed on in pieces unless `decide` asks for it whole."""

    def __init__(self, header_size: int, decide: _Decide) -> None:
        self._header_size = header_size
        self._decide = decide
        self._buffer = bytearray()
        self._passing = 0  # bytes of the current frame still to pass on as they come
        self._decided = False
        self._transform: Callable[[bytes], bytes] | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to send on for `data`, in order (the same object when `data` lies inside one frame)."""
        if self._passing >= len(data):
            self._passing -= len(data)
            return [data]
        out: list[bytes] = []
        if self._passing:
            out.append(data[: self._passing])
            data = data[self._passing :]
            self._passing = 0
        self._buffer += data
        while self._next_frame(out):
            pass
        return out

    def _next_frame(self, out: list[bytes]) -> bool:
        """Move one frame (or the start of one) from the buffer to `out`; False when more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < _SIZE.size:
            return False
        (size,) = _SIZE.unpack_from(buffer)
        if size < 0:
            raise UnreadableResponse("a frame with a negative size")
        if not self._decided:
            header_end = _SIZE.size + min(size, self._header_size)
            if len(buffer) < header_end:
                return False
            self._transform = self._decide(bytes(buffer[_SIZE.size : header_end]))
            self._decided = True
        end = _SIZE.size + size
        if self._transform is None:
            taken = min(len(buffer), end)
            out.append(bytes(buffer[:taken]))
            del buffer[:taken]
            self._passing = end - taken
            self._decided = False
            return not self._passing
        if size > MAX_HELD_FRAME:
            raise UnreadableResponse("a Metadata response larger than the connector holds")
        if len(buffer) < end:
            return False
        body = self._transform(bytes(buffer[_SIZE.size : end]))
        del buffer[:end]
        self._decided = False
        out.append(_SIZE.pack(len(body)) + body)
        return True


class RequestWatch:
    """Watches the client's requests: notes each Metadata request's version by correlation id.

    It reads the headers where they lie in each read, copying nothing: produce requests, nearly all the bytes
    a producer sends, pass through it untouched.
    """

    def __init__(self) -> None:
        self.metadata_versions: dict[int, int] = {}
        self._skip = 0  # bytes of the current request still to come before the next one starts
        self._partial = b""  # the start of a request whose header the last read cut

    def feed(self, data: bytes) -> None:
        """Read the request headers in `data`; raises `UnreadableResponse` for a request the connector refuses."""
        if self._partial:
            data, self._partial = self._partial + data, b""
        position, end = self._skip, len(data)
        while position + _SIZE.size <= end:
            (size,) = _SIZE.unpack_from(data, position)
            if size < 0:
                raise UnreadableResponse("a frame with a negative size")
            header_end = position + _SIZE.size + _REQUEST_HEADER.size
            if size >= _REQUEST_HEADER.size:  # shorter ones are raw SASL tokens, not Kafka requests
                if header_end > end:
                    break
                self._note(*_REQUEST_HEADER.unpack_from(data, position + _SIZE.size))
            position += _SIZE.size + size
        if position >= end:
            self._skip = position - end
        else:
            self._skip, self._partial = 0, data[position:]

    def _note(self, api_key: int, version: int, correlation_id: int) -> None:
        if api_key == METADATA_API_KEY:
            self.metadata_versions[correlation_id] = version
        elif api_key in _UNRELOCATED_APIS:
            raise UnreadableResponse(f"api key {api_key} names brokers the connector does not relocate")


class ResponseRewrite:
    """Passes the broker's responses on, with the brokers of Metadata responses relocated."""

    def __init__(self, watch: RequestWatch, relocate: Relocate) -> None:
        self._versions = watch.metadata_versions
        self._relocate = relocate
        self._frames = _Frames(_RESPONSE_HEADER.size, self._rewrite_if_metadata)

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to pass to the client for `data`; raises `UnreadableResponse` for a Metadata one it cannot read."""
        return self._frames.feed(data)

    def _rewrite_if_metadata(self, header: bytes) -> Callable[[bytes], bytes] | None:
        if len(header) < _RESPONSE_HEADER.size:
            return None
        version = self._versions.pop(_RESPONSE_HEADER.unpack(header)[0], None)
        if version is None:
            return None
        return functools.partial(rewrite_metadata, version=version, relocate=self._relocate)
