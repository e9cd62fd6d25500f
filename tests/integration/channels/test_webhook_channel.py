"""The webhook channel against real HTTP receivers on loopback: signatures, statuses, network failures, guard, TLS."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from chargewire.channels.address_guard import check_callback_url
from chargewire.channels.base import AttemptResult, OutboundMessage
from chargewire.channels.webhook import RESPONSE_BODY_LIMIT
from chargewire.clock import utcnow
from chargewire.errors import PermanentDeliveryError, RetryableDeliveryError
from tests.integration.channels.conftest import LOOPBACK, ChannelFactory
from tests.support.factories import outbound_message_factory, subscription_factory

BODY = b'{"notification":"session.started","session":{"id":"s-1","kwh":1.5,"note":"\xc3\xbc"}}'
TOKEN = "cw_live_the-api-token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[..., Awaitable[int]]


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


def outbound_message(url: str, **overrides: Any) -> OutboundMessage:
    """A message for `url` as the dispatcher builds it; any field can be overridden."""
    subscription = subscription_factory(callback_url=url, api_version=1)
    return outbound_message_factory(subscription, **{"payload": BODY, "token_text": TOKEN, **overrides})


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp.web receivers on 127.0.0.1 running a handler; returns the port. Stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        port: int = runner.addresses[0][1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


def recording(received: list[Received], status: int = 202, body: bytes = b"", **headers: str) -> Handler:
    """A handler that records each request and answers `status` with `body` and `headers`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        received.append(Received(request.path, dict(request.headers), await request.read()))
        return web.Response(status=status, body=body, headers=headers)

    return handle


def assert_error(result: AttemptResult, kind: type[Exception], error_class: str) -> None:
    """The attempt failed with an error of this type and class."""
    assert isinstance(result.error, kind), result.error
    assert result.error.error_class == error_class, result.error.message


async def test_webhook_channel_delivers_exact_bytes_with_both_signatures(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received, body=b'{"ok":true}'))
    message = outbound_message(f"http://127.0.0.1:{port}/hooks/ev")

    result = await channel_for().send(message)

    assert result.succeeded
    assert result.status_code == 202
    [request] = received
    assert request.path == "/hooks/ev"
    assert request.body == BODY
    expected_x_signature = hmac.new(TOKEN.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == expected_x_signature
    Webhook(message.signing_secrets[0]).verify(request.body, request.headers)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("chargewire/")
    assert request.headers["X-Tenant"] == "tenant-a"
    assert request.headers["X-Webhook-Id"] == "sub_01"
    assert request.headers["X-Webhook-Type"] == "session.started"
    assert request.headers["webhook-id"] == "dlv_01"
    assert request.headers["X-Timestamp"].endswith("Z")


async def test_webhook_channel_records_the_attempt_for_the_log(serve: Serve, channel_for: ChannelFactory) -> None:
    port = await serve(recording([], status=200, body=b"thanks", **{"X-Receiver": "r1"}))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert result.request_headers["X-Signature"]
    assert result.request_headers["webhook-signature"]
    assert all(TOKEN not in value for value in result.request_headers.values())
    assert result.response_headers is not None
    assert result.response_headers["X-Receiver"] == "r1"
    assert result.response_body == "thanks"
    assert result.duration_ms > 0
    assert abs((utcnow() - result.started_at).total_seconds()) < 5


async def test_webhook_channel_cuts_the_recorded_response_body_at_20_kb(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    port = await serve(recording([], status=200, body=b"x" * 100_000))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert result.succeeded
    assert result.response_body == "x" * RESPONSE_BODY_LIMIT == "x" * 20480


async def test_webhook_channel_sends_the_same_bytes_and_delivery_id_on_every_attempt(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received, status=500))
    channel = channel_for()
    message = outbound_message(f"http://127.0.0.1:{port}/")

    await channel.send(message)
    await channel.send(replace(message, attempt_number=2))

    assert received[0].body == received[1].body == BODY
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"] == "dlv_01"


async def test_webhook_channel_treats_500_as_retryable(serve: Serve, channel_for: ChannelFactory) -> None:
    port = await serve(recording([], status=500, body=b"boom"))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "http_status")
    assert result.status_code == 500
    assert result.response_body == "boom"


async def test_webhook_channel_parses_retry_after_seconds_on_429(serve: Serve, channel_for: ChannelFactory) -> None:
    port = await serve(recording([], status=429, **{"Retry-After": "120"}))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "throttled")
    assert isinstance(result.error, RetryableDeliveryError)
    assert result.error.retry_after_s == 120.0


async def test_webhook_channel_parses_retry_after_http_date_on_503(serve: Serve, channel_for: ChannelFactory) -> None:
    later = utcnow() + datetime.timedelta(minutes=10)
    port = await serve(recording([], status=503, **{"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "http_status")
    assert isinstance(result.error, RetryableDeliveryError)
    assert result.error.retry_after_s is not None
    assert 590 <= result.error.retry_after_s <= 600


@pytest.mark.parametrize("status", [408, 409, 425, 502, 504])
async def test_webhook_channel_retries_statuses_that_mean_not_now(
    status: int, serve: Serve, channel_for: ChannelFactory
) -> None:
    port = await serve(recording([], status=status))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "http_status")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_webhook_channel_fails_other_4xx_permanently(
    status: int, serve: Serve, channel_for: ChannelFactory
) -> None:
    port = await serve(recording([], status=status))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, PermanentDeliveryError, "http_status")
    assert result.status_code == status


async def test_webhook_channel_does_not_follow_redirects(serve: Serve, channel_for: ChannelFactory) -> None:
    followed: list[Received] = []
    target_port = await serve(recording(followed))
    port = await serve(recording([], status=307, Location=f"http://127.0.0.1:{target_port}/elsewhere"))

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "redirect")
    assert result.status_code == 307
    assert followed == []


async def test_webhook_channel_classifies_a_slow_receiver_as_timeout(serve: Serve, channel_for: ChannelFactory) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=202)

    port = await serve(slow)
    try:
        result = await channel_for(webhook_timeout_s=0.3).send(outbound_message(f"http://127.0.0.1:{port}/"))
    finally:
        release.set()

    assert_error(result, RetryableDeliveryError, "timeout")
    assert 250 <= result.duration_ms < 3000


async def test_webhook_channel_classifies_a_closed_port_as_refused(channel_for: ChannelFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))

    assert_error(result, RetryableDeliveryError, "refused")


class _ResetMidRequest(asyncio.Protocol):
    """Reads the first bytes of a request, then resets the connection (RST, no answer)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        # Linger 0: closing sends RST instead of FIN, as a crashing receiver or a middlebox would.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def data_received(self, data: bytes) -> None:
        assert isinstance(self._transport, asyncio.Transport)
        self._transport.abort()


async def test_webhook_channel_classifies_a_connection_reset_mid_request(channel_for: ChannelFactory) -> None:
    server = await asyncio.get_running_loop().create_server(_ResetMidRequest, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await channel_for().send(outbound_message(f"http://127.0.0.1:{port}/"))
    finally:
        server.close()
        await server.wait_closed()

    assert_error(result, RetryableDeliveryError, "reset")


async def test_webhook_channel_blocks_names_resolving_to_loopback_unless_allowed(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received))

    result = await channel_for(delivery_allow_networks=[]).send(outbound_message(f"http://localhost:{port}/"))

    assert_error(result, PermanentDeliveryError, "blocked_address")
    message = result.error.message if result.error else ""
    assert "localhost resolves to a blocked address" in message
    assert "127.0.0.1" not in message  # what an internal name resolves to is not told
    assert received == []


async def test_webhook_channel_admits_names_resolving_into_the_allow_list(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received))

    result = await channel_for(delivery_allow_networks=LOOPBACK).send(outbound_message(f"http://localhost:{port}/"))

    assert result.succeeded
    assert len(received) == 1


async def test_webhook_channel_blocks_ip_literals_outside_the_allow_list(
    serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received))

    result = await channel_for(delivery_allow_networks=["10.0.0.0/8"]).send(
        outbound_message(f"http://127.0.0.1:{port}/")
    )

    assert_error(result, PermanentDeliveryError, "blocked_address")
    assert received == []


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]"])
async def test_webhook_channel_never_reaches_loopback_through_unusual_address_forms(
    host: str, serve: Serve, channel_for: ChannelFactory
) -> None:
    received: list[Received] = []
    port = await serve(recording(received))

    result = await channel_for(delivery_allow_networks=[]).send(outbound_message(f"http://{host}:{port}/"))

    assert isinstance(result.error, PermanentDeliveryError)
    assert result.error.error_class in {"blocked_address", "invalid_url"}
    assert received == []


async def test_webhook_channel_classifies_an_unknown_name_as_dns(channel_for: ChannelFactory) -> None:
    result = await channel_for().send(outbound_message("http://no-such-receiver.invalid/hook"))

    assert_error(result, RetryableDeliveryError, "dns")


async def test_webhook_channel_fails_a_non_http_callback_url_permanently(channel_for: ChannelFactory) -> None:
    result = await channel_for().send(outbound_message("ftp://127.0.0.1/hook"))

    assert_error(result, PermanentDeliveryError, "invalid_url")


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1; returns (certificate, key) PEM paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "receiver.pem", directory / "receiver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver_files(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """The receiver's certificate path and a server TLS context presenting it."""
    cert_path, key_path = write_self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    return cert_path, server_context


async def test_webhook_channel_rejects_an_untrusted_certificate_as_tls(
    serve: Serve, channel_for: ChannelFactory, tls_receiver_files: tuple[Path, ssl.SSLContext]
) -> None:
    received: list[Received] = []
    _, server_context = tls_receiver_files
    port = await serve(recording(received), ssl_context=server_context)

    result = await channel_for().send(outbound_message(f"https://localhost:{port}/"))

    assert_error(result, RetryableDeliveryError, "tls")
    assert received == []


async def test_webhook_channel_verifies_the_host_name_through_the_guarded_resolver(
    serve: Serve, channel_for: ChannelFactory, tls_receiver_files: tuple[Path, ssl.SSLContext]
) -> None:
    received: list[Received] = []
    cert_path, server_context = tls_receiver_files
    port = await serve(recording(received), ssl_context=server_context)
    trusting = ssl.create_default_context(cafile=str(cert_path))

    result = await channel_for(ssl_context=trusting).send(outbound_message(f"https://localhost:{port}/"))

    assert result.succeeded, result.error
    assert received[0].body == BODY


async def test_subscribe_time_check_refuses_names_resolving_to_blocked_addresses() -> None:
    with pytest.raises(PermanentDeliveryError) as raised:
        await check_callback_url("http://localhost:8080/hook")

    assert raised.value.error_class == "blocked_address"


async def test_subscribe_time_check_accepts_names_resolving_into_the_allow_list() -> None:
    await check_callback_url("http://localhost:8080/hook", [ipaddress.ip_network(net) for net in LOOPBACK])


async def test_subscribe_time_check_accepts_names_that_do_not_resolve_yet() -> None:
    await check_callback_url("https://not-yet-registered.invalid/hook")
