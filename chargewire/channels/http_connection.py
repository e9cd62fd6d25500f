"""One HTTP/1.1 client connection: an asyncio protocol that writes a request and parses its answer with httptools.

A connection carries one exchange at a time. `request` writes the whole request in one `transport.write` and
returns a future of the status line and headers (informational 1xx answers, such as 100 Continue, are skipped);
`read_body` then waits for the rest of the body, kept up to a limit. What can go wrong, as raised:

| raised                 | when                                                                        |
|------------------------|-----------------------------------------------------------------------------|
| `ConnectionClosed`     | the peer closed or reset the connection before the headers were complete    |
| `InvalidResponse`      | the bytes received are not an HTTP/1.x response (httptools refused them)    |

After the headers, a connection lost mid-body ends the body with what arrived; the status decided already.
The connection can carry a next exchange (`reusable`) only when the answer was complete, within the body
limit, and neither side asked to close; anything the peer sends or does between exchanges closes it.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from chargewire.errors import ChargewireError

# aiohttp's limit per header line, kept so a receiver's answer is judged as it was; and a bound on the whole head.
MAX_FIELD_BYTES = 8190
MAX_HEAD_BYTES = 1024 * 1024


class HttpClientError(ChargewireError):
    """The HTTP exchange with a receiver failed."""


class ConnectionClosed(HttpClientError):
    """The receiver closed the connection before answering."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(f"The receiver closed the connection before answering ({cause!r})." if cause else None)
        self.cause = cause


class InvalidResponse(HttpClientError):
    """The answer was not valid HTTP."""


class Response:
    """The status line and headers of an answer, and its body once whole (else through `HttpConnection.read_body`).

    The body rides on the head because the usual answer arrives in one read: by the time the waiting request
    resumes it is complete, and taking it here costs no further call.
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body: bytes | None = None


class HttpConnection(asyncio.Protocol):
    """A keep-alive client connection that runs one request and response exchange at a time."""

    def __init__(self, body_limit: int) -> None:
        self._body_limit = body_limit
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # Lines ended by a bare LF, as some hand-written receivers send and aiohttp read. Nothing else is relaxed:
        # llhttp's lenient header mode would also let NUL and control bytes through to the attempt log.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._head: asyncio.Future[Response] | None = None
        self._response: Response | None = None
        # One timer per connection, left armed across exchanges (see `request`); `_deadline` is the exchange's own.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._body_waiter: asyncio.Future[None] | None = None
        self._reason = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._body = bytearray()
        self._keep_alive = False
        self._busy = False
        self._complete = False
        self.closed = False
        # True when the last exchange ended cleanly and the connection may carry the next one. An attribute, not
        # a property: the pool reads it twice per exchange.
        self.reusable = False

    # The exchange, as the pool's user drives it.

    def request(self, data: bytes, deadline: float) -> asyncio.Future[Response]:
        """Write `data` (a whole request); the future gets the answer's status line and headers, or fails with
        `TimeoutError` past `deadline` (event loop time; the connection is not reused after)."""
        if self.closed or self._transport is None:
            raise ConnectionClosed()
        self._busy = True
        self._complete = False
        self._keep_alive = False
        self.reusable = False
        self._response = None
        self._body = bytearray()
        head: asyncio.Future[Response] = self._loop.create_future()
        self._head = head
        # A plain method: a coroutine here was one more frame to resume per answer. The connection's timer stays
        # armed when an answer comes and is moved only when it would fire after this deadline; when it fires
        # early it re-arms for the exchange then in flight. A timer made and cancelled per exchange cost ~1.4 us.
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            self._arm(deadline)
        self._transport.write(data)
        return head

    async def read_body(self) -> bytes:
        """The answer's body up to the limit; ends early, with what arrived, if the connection is lost."""
        if not self._complete and not self.closed:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._body_waiter = waiter
            await waiter
        return bytes(self._body)

    @property
    def body_done(self) -> bool:
        """True when the body will grow no more: the answer is complete or the connection is gone."""
        return self._complete or self.closed

    @property
    def received_body(self) -> bytes:
        """What arrived of the body so far (for an exchange cut short by a timeout)."""
        return bytes(self._body)

    def close(self) -> None:
        """Close the connection (a TLS one after its close_notify)."""
        self.closed = True
        self.reusable = False
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (uvloop's implements asyncio.Transport without subclassing it)."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; bytes between exchanges mean a peer we cannot stay in step with, so close."""
        if not self._busy:
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # A callback's own refusal reaches here wrapped in HttpParserCallbackError.
            refusal = exc.__context__ if isinstance(exc.__context__, InvalidResponse) else None
            self._fail(refusal or InvalidResponse(f"The answer was not valid HTTP: {exc}."))
            self.close()

    def eof_received(self) -> bool:
        """Let the transport close: the peer will send nothing more."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """End the exchange in flight: before the headers it failed, after them the body ends here."""
        self.closed = True
        self.reusable = False
        if self._head is not None and not self._head.done():
            self._fail(ConnectionClosed(exc))
        else:
            self._end_body()

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A new answer (the final one, or an informational 1xx before it) begins; one more is refused."""
        if not self._busy:
            raise InvalidResponse("The receiver sent more than one answer.")
        self._reason = b""
        self._headers = []
        self._head_bytes = 0

    def on_status(self, reason: bytes) -> None:
        """The reason phrase, possibly in pieces."""
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header; like aiohttp, undecodable bytes survive as lone surrogates for the log to replace."""
        self._head_bytes += len(name) + len(value)
        if len(name) > MAX_FIELD_BYTES or len(value) > MAX_FIELD_BYTES or self._head_bytes > MAX_HEAD_BYTES:
            raise InvalidResponse("The answer's headers are too large.")
        self._headers.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        """Hand the status and headers to `request`, unless this is an informational answer to skip."""
        status = self._parser.get_status_code()
        if status < 200 or self._head is None or self._head.done():
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._response = Response(status, self._reason.decode("utf-8", "surrogateescape"), self._headers)
        self._head.set_result(self._response)

    def on_body(self, chunk: bytes) -> None:
        """Keep the body up to the limit; beyond it, stop reading and give up the connection."""
        room = self._body_limit - len(self._body)
        self._body += chunk[:room]
        if len(chunk) > room:
            self._end_body()
            self.close()

    def on_message_complete(self) -> None:
        """The final answer is complete; an informational one only ends its own headers."""
        if self._head is not None and self._head.done():
            self._complete = True
            self._busy = False
            self.reusable = self._keep_alive and not self.closed
            if self._response is not None:
                self._response.body = bytes(self._body)
            self._end_body()

    def _end_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._body_waiter = None

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._time_out)
        self._timer_at = at

    def _time_out(self) -> None:
        """The timer fired: fail a head still awaited past its deadline, or wait on for one not yet due."""
        self._timer = None
        if self._head is None or self._head.done():
            return  # the timer bounds the head only
        if self._timer_at >= self._deadline:  # it was armed for this exchange's deadline
            self._fail(TimeoutError())
        else:
            self._arm(self._deadline)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: HttpClientError | TimeoutError) -> None:
        self._busy = False
        self._stop_timer()
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        self._end_body()
