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

Every attempt connects only to addresses the SSRF guard accepted at connect time: the client's resolver is
`address_guard.resolve_allowed`, and IP-literal hosts (which aiohttp never resolves) are checked first.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from chargewire.channels.address_guard import IPNetwork, check_address, ip_literal, resolve_allowed
from chargewire.channels.base import AttemptResult, OutboundMessage
from chargewire.channels.signing import webhook_headers
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

logger = logging.getLogger(__name__)

RESPONSE_BODY_LIMIT = 20 * 1024
KEEPALIVE_TIMEOUT_S = 4.0
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


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
        self._timeout = aiohttp.ClientTimeout(
            total=settings.webhook_timeout_s, sock_connect=settings.webhook_connect_timeout_s
        )
        self._ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._limit = settings.worker_max_in_flight
        self._limit_per_host = max_connections_per_host or 0
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """POST the message's payload to its subscription's callback URL; never raises for delivery failures."""
        started_at = utcnow()
        clock = time.perf_counter()
        headers: dict[str, str] = {}
        try:
            headers = _signed_headers(message, started_at)
            url = self._target_url(message)
            return await self._post(url, message.payload, headers, started_at, clock)
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
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _target_url(self, message: OutboundMessage) -> URL:
        raw = message.subscription.callback_url
        if not raw:
            raise PermanentDeliveryError("The subscription has no callback URL.", error_class="invalid_url")
        return _checked_callback(raw, self._allow)

    async def _post(
        self, url: URL, payload: bytes, headers: dict[str, str], started_at: datetime, clock: float
    ) -> AttemptResult:
        session = self._open_session()
        async with session.post(url, data=payload, headers=headers, allow_redirects=False) as response:
            body = await _read_capped(response.content, RESPONSE_BODY_LIMIT)
            return AttemptResult(
                started_at=started_at,
                duration_ms=_elapsed_ms(clock),
                error=status_error(response.status, response.reason, response.headers, utcnow()),
                status_code=response.status,
                request_headers=headers,
                response_headers=_flatten(response.headers),
                response_body=body.decode("utf-8", errors="replace"),
            )

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                resolver=_GuardedResolver(self._allow),
                ssl=self._ssl_context,
                # Below Node's 5 s server default, so we drop an idle connection before the receiver
                # does, instead of racing its close with a POST that then fails as "reset".
                keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # Cookies from one receiver must never ride along on another subscription's requests.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Proxy variables would send deliveries around the address guard.
                trust_env=False,
            )
        return self._session


@functools.lru_cache(maxsize=4096)
def _checked_callback(raw: str, allow: tuple[IPNetwork, ...]) -> URL:
    """The parsed callback URL, its IP literal checked by the guard; cached, as every delivery asks again."""
    try:
        url = URL(raw)
    except ValueError as exc:
        raise PermanentDeliveryError("The callback URL is not valid.", error_class="invalid_url") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise PermanentDeliveryError("The callback URL must be http(s) with a host.", error_class="invalid_url")
    literal = ip_literal(url.raw_host)
    if literal is not None:
        # aiohttp connects to IP literals without asking the resolver, so the guard runs here instead.
        check_address(literal, allow)
    return url


class _GuardedResolver(AbstractResolver):
    """aiohttp's resolver, replaced: only addresses the SSRF guard accepts are ever connected to."""

    def __init__(self, allow: Iterable[IPNetwork]) -> None:
        self._allow = tuple(allow)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host`; raises `BlockedAddress` when any of its addresses is blocked."""
        resolved = await resolve_allowed(host, port, self._allow, family)
        return [
            ResolveResult(
                hostname=host,
                host=str(entry.address),
                port=entry.port,
                family=entry.family,
                proto=0,
                flags=_NUMERIC_FLAGS,
            )
            for entry in resolved
        ]

    async def close(self) -> None:
        """Nothing to release: resolution runs in the event loop's executor."""


def status_error(status: int, reason: str | None, headers: Mapping[str, str], now: datetime) -> DeliveryError | None:
    """The typed error for an HTTP answer, or None for a 2xx."""
    if 200 <= status < 300:
        return None
    message = f"The receiver answered {status} {reason or ''}".rstrip() + "."
    if 300 <= status < 400:
        location = headers.get("Location", "")
        return RetryableDeliveryError(
            f"{message} Redirects are not followed (Location: {location or 'none'}).", error_class="redirect"
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        return RetryableDeliveryError(message, error_class="throttled", retry_after_s=retry_after)
    if status == 503:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
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
    """The delivery error for whatever the attempt raised: aiohttp's errors are mapped here and only here."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return RetryableDeliveryError(f"The host name did not resolve: {exc.os_error}.", error_class="dns")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return RetryableDeliveryError(f"TLS failed: {exc}.", error_class="tls")
    # Before the connection errors: aiohttp's timeouts subclass them.
    if isinstance(exc, TimeoutError):
        return RetryableDeliveryError("The receiver did not answer in time.", error_class="timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError) or exc.os_error.errno == errno.ECONNREFUSED:
            return RetryableDeliveryError("The receiver refused the connection.", error_class="refused")
        return RetryableDeliveryError(f"Could not connect: {exc.os_error}.", error_class="connect")
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentDeliveryError("The callback URL is not valid.", error_class="invalid_url")
    if _is_reset(exc):
        return RetryableDeliveryError("The receiver closed the connection before answering.", error_class="reset")
    if isinstance(exc, aiohttp.ClientResponseError):
        return RetryableDeliveryError(f"The answer was not valid HTTP: {exc.message}.", error_class="protocol")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return RetryableDeliveryError(f"The connection failed: {exc!r}.", error_class="connect")
    return RetryableDeliveryError(f"Internal error: {exc!r}.", error_class="internal")


def _is_reset(exc: Exception) -> bool:
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.UploadAbortedError
        | ConnectionResetError
        | BrokenPipeError,
    ):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in _RESET_ERRNOS


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes of the body; the rest is never read (the connection is then closed, not reused)."""
    received = bytearray()
    try:
        while len(received) < limit:
            chunk = await content.read(limit - len(received))
            if not chunk:
                break
            received += chunk
    except (aiohttp.ClientError, TimeoutError):
        # The status line decided the outcome already; the log shows what arrived before the failure.
        pass
    return bytes(received)


def _flatten(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """Response headers for the log; a repeated header's values are joined with ", " as HTTP allows."""
    return {str(key): ", ".join(headers.getall(key)) for key in dict.fromkeys(headers.keys())}


def _elapsed_ms(clock: float) -> float:
    return round((time.perf_counter() - clock) * 1000, 3)
