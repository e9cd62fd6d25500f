"""The webhook channel: one signed POST of the stored payload bytes per attempt, over a pooled aiohttp client.

Success is any 2xx. Everything else comes back as a typed error in the `AttemptResult`, never raised:

| error_class       | raised as   | when                                                                    |
|-------------------|-------------|-------------------------------------------------------------------------|
| `http_status`     | retryable   | 5xx, 408, 409, 425; a 503 carries `retry_after_s` from Retry-After      |
| `throttled`       | retryable   | 429, with `retry_after_s` from Retry-After (seconds or HTTP-date)       |
| `http_status`     | permanent   | every other 4xx, 410 Gone included                                      |
| `redirect`        | retryable   | 3xx: redirects are never followed (delivery.md), as in Svix             |
| `timeout`         | retryable   | no connection within the connect timeout, or no answer within the total |
| `refused`         | retryable   | the port refused the connection                                         |
| `connect`         | retryable   | any other failure to connect (host or network unreachable)              |
| `dns`             | retryable   | the name did not resolve                                                |
| `tls`             | retryable   | handshake or certificate verification failed                            |
| `reset`           | retryable   | the receiver closed or reset the connection before answering            |
| `protocol`        | retryable   | the answer was not valid HTTP                                           |
| `blocked_address` | permanent   | the target is, or resolves to, a non-public address (`address_guard`)   |
| `invalid_url`     | permanent   | no callback URL, or one that is not http(s)                             |
| `signing`         | permanent   | a signing secret that is not `whsec_` + base64                          |
| `internal`        | retryable   | a bug in chargewire; logged with its traceback                          |

Why 4xx is permanent: the receiver looked at the request and refused it, and the same bytes will be
refused again; retrying for a day only hides the problem. The exceptions are the 4xx codes that mean
"not now" (408, 409, 425, 429). Svix retries every non-2xx; we differ, but a permanent failure still leaves
the delivery visibly failed and kept for resend. A 3xx is retried, as Svix does, because a redirect is no
verdict on the content: it is often temporary (maintenance, a moving load balancer), and a lasting one
makes the endpoint fail continuously, which disables the subscription like any other dead endpoint
(delivery.md). TLS failures are retried because the usual cause, an expired certificate, is renewed within
the schedule.

Every attempt connects only to addresses the SSRF guard accepted at connect time: the connection pool
(`http_pool`) resolves names with `address_guard.resolve_allowed` and checks IP literals itself.

The HTTP client is chargewire's own (`http_pool`, `http_connection`; docs/decisions/0009-lean-webhook-client.md):
one `transport.write` per request, the answer parsed by httptools in the protocol's callbacks, no task per
request. Each request carries Host, Accept `*/*`, Content-Length and `signing.webhook_headers` (Content-Type,
User-Agent, the identity and signature headers); no Accept-Encoding, so receivers answer uncompressed and the
log shows their body as sent. Nothing else rides along: no cookies, no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import logging
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import certifi
from yarl import URL

from chargewire.channels.address_guard import IPNetwork, check_address, ip_literal
from chargewire.channels.base import AttemptResult, OutboundMessage
from chargewire.channels.http_connection import ConnectionClosed, InvalidResponse
from chargewire.channels.http_pool import ConnectFailed, ConnectionPool, NameNotResolved, Origin
from chargewire.channels.signing import webhook_headers
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

logger = logging.getLogger(__name__)

RESPONSE_BODY_LIMIT = 20 * 1024
KEEPALIVE_TIMEOUT_S = 4.0
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


class _Target(NamedTuple):
    """A checked callback URL: the pool's key and the request's first lines, built once per URL."""

    origin: Origin
    head: bytes


class WebhookChannel:
    """Delivers messages as signed HTTP POSTs through one keep-alive connection pool for all subscriptions."""

    def __init__(
        self,
        settings: Settings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_host: int | None = None,
    ) -> None:
        """Configure from `settings`; the pool opens on the first send.

        Args:
            settings: timeouts, the address allow-list, and the pool limit (`worker_max_in_flight` in all).
                There is no per-host limit by default: the dispatcher bounds attempts per subscription, and
                a per-host cap would let a slow subscription starve another one on the same host.
            ssl_context: trust to verify receivers with; by default certifi's CA bundle.
            max_connections_per_host: a cap on connections to one host:port (0, the default, for none);
                requests beyond it wait for one, and that wait counts toward the total timeout.
        """
        self._allow: tuple[IPNetwork, ...] = tuple(settings.delivery_allow_networks)
        self._timeout_s = settings.webhook_timeout_s
        self._connect_timeout_s = settings.webhook_connect_timeout_s
        self._ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._limit = settings.worker_max_in_flight
        self._limit_per_host = max_connections_per_host or 0
        self._pool: ConnectionPool | None = None
        # Cached per channel by the URL alone: a cache keyed by the allow-list too hashed its networks (in Python,
        # ~1 us) on every attempt.
        self._checked_callback = functools.lru_cache(maxsize=4096)(functools.partial(_checked_callback, self._allow))

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """POST the message's payload to its subscription's callback URL; never raises for delivery failures."""
        started_at = utcnow()
        clock = time.perf_counter()
        headers: dict[str, str] = {}
        # One coroutine from the headers to the result: a frame per step (`_post`) was resumed on every wake-up.
        try:
            headers = _signed_headers(message, started_at)
            raw = message.subscription.callback_url
            if not raw:
                raise PermanentDeliveryError("The subscription has no callback URL.", error_class="invalid_url")
            target = self._checked_callback(raw)
            pool = self._pool or self._open_pool()
            request = _request_bytes(target.head, headers, message.payload)
            deadline = asyncio.get_running_loop().time() + self._timeout_s
            response, body = await pool.exchange(target.origin, request, deadline)
            status = response.status
            logged = _flatten(response.headers)
            return AttemptResult(
                started_at=started_at,
                duration_ms=_elapsed_ms(clock),
                error=None if 200 <= status < 300 else status_error(status, response.reason, logged, utcnow()),
                status_code=status,
                request_headers=headers,
                response_headers=logged,
                response_body=body.decode("utf-8", errors="replace"),
            )
        except Exception as exc:
            error = _translate(exc)
            if error.error_class == "internal":
                logger.exception("webhook delivery %s failed inside chargewire", message.delivery_id)
            return AttemptResult(
                started_at=started_at,
                duration_ms=_elapsed_ms(clock),
                error=error,
                request_headers=headers,
            )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()

    def _open_pool(self) -> ConnectionPool:
        self._pool = ConnectionPool(
            allow=self._allow,
            ssl_context=self._ssl_context,
            connect_timeout_s=self._connect_timeout_s,
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            # Below Node's 5 s server default, so we drop an idle connection before the receiver
            # does, instead of racing its close with a POST that then fails as "reset".
            keepalive_s=KEEPALIVE_TIMEOUT_S,
            body_limit=RESPONSE_BODY_LIMIT,
        )
        return self._pool


def _checked_callback(allow: tuple[IPNetwork, ...], raw: str) -> _Target:
    """The parsed callback URL, its IP literal checked by the guard (each channel caches it: every delivery asks)."""
    try:
        url = URL(raw)
        host = url.raw_host
        host_header = url.host_port_subcomponent
        path = url.raw_path_qs or "/"
    except ValueError as exc:
        raise PermanentDeliveryError("The callback URL is not valid.", error_class="invalid_url") from exc
    if url.scheme not in ("http", "https") or not host or url.port is None:
        raise PermanentDeliveryError("The callback URL must be http(s) with a host.", error_class="invalid_url")
    literal = ip_literal(host)
    if literal is not None:
        # Checked here too for an early answer; the pool checks again on every new connection.
        check_address(literal, allow)
    head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: */*\r\n{_basic_auth(url)}".encode()
    return _Target(Origin(url.scheme == "https", host, url.port), head)


def _basic_auth(url: URL) -> str:
    """The Authorization line for credentials in the URL (`https://user:secret@host/`), as aiohttp sent it."""
    if url.user is None and url.password is None:
        return ""
    credentials = f"{url.user or ''}:{url.password or ''}".encode("latin-1")
    return f"Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"


def _request_bytes(head: bytes, headers: dict[str, str], payload: bytes) -> bytes:
    """The whole request: one buffer, so one `transport.write` (and one TCP segment when it fits)."""
    # Formatted by `map` in C: a comprehension ran ~130 bytecodes per request for its ten headers.
    lines = "".join(map("{}: {}\r\n".format, headers.keys(), headers.values()))
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        raise ValueError("a header name or value holds a line break")
    return b"".join((head, lines.encode(), b"Content-Length: %d\r\n\r\n" % len(payload), payload))


def status_error(status: int, reason: str | None, headers: Mapping[str, str], now: datetime) -> DeliveryError | None:
    """The typed error for an HTTP answer, or None for a 2xx."""
    if 200 <= status < 300:
        return None
    message = f"The receiver answered {status} {reason or ''}".rstrip() + "."
    headers = {name.lower(): value for name, value in headers.items()}
    if 300 <= status < 400:
        location = headers.get("location", "")
        return RetryableDeliveryError(
            f"{message} Redirects are not followed (Location: {location or 'none'}).", error_class="redirect"
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        return RetryableDeliveryError(message, error_class="throttled", retry_after_s=retry_after)
    if status == 503:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        return RetryableDeliveryError(message, error_class="http_status", retry_after_s=retry_after)
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return PermanentDeliveryError(message, error_class="http_status")
    return RetryableDeliveryError(message, error_class="http_status")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` value asks to wait (delay-seconds or HTTP-date), or None when absent or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _signed_headers(message: OutboundMessage, now: datetime) -> dict[str, str]:
    try:
        return webhook_headers(message, now)
    except ValueError as exc:
        raise PermanentDeliveryError(f"The message could not be signed: {exc}.", error_class="signing") from exc


def _translate(exc: Exception) -> DeliveryError:
    """The delivery error for whatever the attempt raised: the HTTP client's errors are mapped here and only here."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, NameNotResolved):
        return RetryableDeliveryError(f"The host name did not resolve: {exc.os_error}.", error_class="dns")
    if isinstance(exc, ssl.SSLError):
        return RetryableDeliveryError(f"TLS failed: {exc}.", error_class="tls")
    if isinstance(exc, TimeoutError):
        return RetryableDeliveryError("The receiver did not answer in time.", error_class="timeout")
    if isinstance(exc, ConnectFailed):
        if isinstance(exc.os_error, ConnectionRefusedError) or exc.os_error.errno == errno.ECONNREFUSED:
            return RetryableDeliveryError("The receiver refused the connection.", error_class="refused")
        return RetryableDeliveryError(f"Could not connect: {exc.os_error}.", error_class="connect")
    if isinstance(exc, ConnectionClosed) or (isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS):
        return RetryableDeliveryError("The receiver closed the connection before answering.", error_class="reset")
    if isinstance(exc, InvalidResponse):
        return RetryableDeliveryError(exc.message, error_class="protocol")
    if isinstance(exc, OSError):
        return RetryableDeliveryError(f"The connection failed: {exc!r}.", error_class="connect")
    return RetryableDeliveryError(f"Internal error: {exc!r}.", error_class="internal")


def _flatten(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Response headers for the log; a repeated header's values (any case) are joined with ", " as HTTP allows."""
    flat: dict[str, str] = {}
    spelling: dict[str, str] = {}
    for name, value in headers:
        key = spelling.setdefault(name.lower(), name)
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


def _elapsed_ms(clock: float) -> float:
    return round((time.perf_counter() - clock) * 1000, 3)
