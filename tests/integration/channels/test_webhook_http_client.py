"""The webhook channel's own HTTP client against raw loopback peers that answer oddly, slowly, or not at all."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from chargewire.channels.base import AttemptResult
from chargewire.channels.http_pool import ConnectionPool, Origin
from chargewire.channels.webhook import RESPONSE_BODY_LIMIT, WebhookChannel
from chargewire.errors import RetryableDeliveryError
from tests.integration.channels.conftest import ChannelFactory
from tests.support.factories import outbound_message_factory, subscription_factory

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# Answers one request: gets the writer and the request's number on its connection (1 for the first).
Answer = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


class ScriptedPeer:
    """A loopback server that reads each request whole, then lets `answer` write (or not) and close (or not)."""

    def __init__(self, answer: Answer) -> None:
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.closed_by_client = asyncio.Event()
        self._answer = answer
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        number = 0
        with contextlib.suppress(ConnectionError):
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client.set()
                    return
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.heads.append(head)
                self.requests += 1
                number += 1
                await self._answer(writer, number)
                if writer.is_closing():
                    return


@pytest.fixture
async def peer_with() -> AsyncIterator[Callable[[Answer], Awaitable[ScriptedPeer]]]:
    """Start scripted peers; all stopped after the test."""
    peers: list[ScriptedPeer] = []

    async def start(answer: Answer) -> ScriptedPeer:
        peer = ScriptedPeer(answer)
        await peer.start()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.aclose()


def writing(*answers: bytes, close: bool = False) -> Answer:
    """An answer that writes the given bytes (one answer per request, the last repeated), then maybe closes."""

    async def answer(writer: asyncio.StreamWriter, number: int) -> None:
        writer.write(answers[min(number, len(answers)) - 1])
        await writer.drain()
        if close:
            writer.close()

    return answer


async def post(channel: WebhookChannel, url: str) -> AttemptResult:
    """One attempt of a small message to `url`."""
    return await channel.send(outbound_message_factory(subscription_factory(callback_url=url)))


def assert_retryable(result: AttemptResult, error_class: str) -> None:
    """The attempt failed with a retryable error of this class."""
    assert isinstance(result.error, RetryableDeliveryError), result.error
    assert result.error.error_class == error_class, result.error.message


async def test_webhook_client_reads_a_chunked_answer_and_keeps_the_connection(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    peer = await peer_with(writing(chunked))
    channel = channel_for()

    first, second = await post(channel, peer.url), await post(channel, peer.url)

    assert first.succeeded
    assert second.succeeded
    assert first.response_body == second.response_body == "hello world"
    assert (peer.connections, peer.requests) == (1, 2)


async def test_webhook_client_closes_the_connection_when_the_body_passes_the_limit(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    size = RESPONSE_BODY_LIMIT + 10_000
    peer = await peer_with(writing(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"y" * size))
    channel = channel_for()

    first = await post(channel, peer.url)
    await asyncio.wait_for(peer.closed_by_client.wait(), 5)
    second = await post(channel, peer.url)

    assert first.response_body == "y" * RESPONSE_BODY_LIMIT
    assert second.succeeded
    assert peer.connections == 2


async def hang_up_after_answering(writer: asyncio.StreamWriter, number: int) -> None:
    """Answer with keep-alive promised, then close the sending side anyway (the client's FIN ends the rest)."""
    writer.write(OK)
    writer.write_eof()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(hang_up_after_answering, id="peer_closed_the_idle_connection"),
        pytest.param(writing(OK + OK), id="peer_answered_twice"),
    ],
)
async def test_webhook_client_opens_a_fresh_connection_when_the_last_one_cannot_be_reused(
    answer: Answer, peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(answer)
    channel = channel_for()

    first = await post(channel, peer.url)
    await asyncio.wait_for(peer.closed_by_client.wait(), 5)
    second = await post(channel, peer.url)

    assert first.succeeded
    assert second.succeeded
    assert (peer.connections, peer.requests) == (2, 2)


async def test_webhook_client_reports_reset_without_resending_when_a_reused_connection_closes_unanswered(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    async def answer_once(writer: asyncio.StreamWriter, number: int) -> None:
        if number == 1:
            writer.write(OK)
        else:
            writer.close()

    peer = await peer_with(answer_once)
    channel = channel_for()

    first = await post(channel, peer.url)
    second = await post(channel, peer.url)

    assert first.succeeded
    assert_retryable(second, "reset")
    assert (peer.connections, peer.requests) == (1, 2)


async def test_webhook_client_reports_reset_when_the_peer_closes_mid_answer(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(b"HTTP/1.1 200 OK\r\nContent-Le", close=True))

    assert_retryable(await post(channel_for(), peer.url), "reset")


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"SMTP READY \x00\xff\r\n\r\n", id="garbage_status_line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Note: a\x00b\r\nContent-Length: 2\r\n\r\nok", id="nul_in_a_header"),
    ],
)
async def test_webhook_client_reports_protocol_for_an_answer_that_is_not_http(
    garbage: bytes, peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(garbage))

    assert_retryable(await post(channel_for(), peer.url), "protocol")


async def test_webhook_client_times_out_a_receiver_that_trickles_its_headers(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    async def trickle(writer: asyncio.StreamWriter, number: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while not writer.is_closing():
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    peer = await peer_with(trickle)

    assert_retryable(await post(channel_for(webhook_timeout_s=0.3), peer.url), "timeout")


async def test_webhook_client_times_out_a_reused_connection_left_unanswered_and_opens_a_fresh_one_after(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    async def answer_first_only(writer: asyncio.StreamWriter, number: int) -> None:
        if number == 1:
            writer.write(OK)

    peer = await peer_with(answer_first_only)
    channel = channel_for(webhook_timeout_s=0.3)

    first = await post(channel, peer.url)
    second = await post(channel, peer.url)
    third = await post(channel, peer.url)

    assert first.succeeded
    assert_retryable(second, "timeout")
    assert third.succeeded
    assert (peer.connections, peer.requests) == (2, 3)


async def test_webhook_client_closes_the_connection_of_an_attempt_cancelled_while_waiting_and_opens_a_fresh_one(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    answered = asyncio.Event()

    async def answer_first_and_third(writer: asyncio.StreamWriter, number: int) -> None:
        if number != 2:
            writer.write(OK)
        answered.set()

    peer = await peer_with(answer_first_and_third)
    channel = channel_for()
    assert (await post(channel, peer.url)).succeeded
    answered.clear()

    waiting = asyncio.ensure_future(post(channel, peer.url))
    await answered.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(peer.closed_by_client.wait(), 5)

    assert (await post(channel, peer.url)).succeeded
    assert (peer.connections, peer.requests) == (2, 3)


async def test_webhook_client_skips_100_continue_and_reads_the_final_answer(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"))

    result = await post(channel_for(), peer.url)

    assert result.succeeded
    assert (result.status_code, result.response_body) == (201, "ok")


async def test_webhook_client_reads_an_answer_whose_lines_end_in_bare_line_feeds(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(b"HTTP/1.1 202 Accepted\nContent-Length: 2\n\nok"))

    result = await post(channel_for(), peer.url)

    assert (result.status_code, result.response_body) == (202, "ok")


async def test_webhook_client_reads_a_body_that_ends_when_the_peer_closes(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(
        writing(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\nuntil close", close=True)
    )

    result = await post(channel_for(), peer.url)

    assert result.succeeded
    assert result.response_body == "until close"
    assert result.response_headers == {"Set-Cookie": "a=1, b=2"}


async def test_webhook_client_closes_every_connection_on_aclose(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(OK))
    channel = channel_for()
    assert (await post(channel, peer.url)).succeeded

    await channel.aclose()

    await asyncio.wait_for(peer.closed_by_client.wait(), 5)


async def test_webhook_client_sends_credentials_in_the_url_as_basic_auth(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]], channel_for: ChannelFactory
) -> None:
    peer = await peer_with(writing(OK))

    result = await post(channel_for(), peer.url.replace("http://", "http://hook%20user:s3cret@"))

    assert result.succeeded
    [head] = peer.heads
    assert b"\r\nAuthorization: Basic aG9vayB1c2VyOnMzY3JldA==\r\n" in head  # "hook user:s3cret"
    assert b"s3cret@" not in head
    assert "Authorization" not in result.request_headers  # never in the attempt log


def pool_to(peer: ScriptedPeer, **overrides: Any) -> tuple[ConnectionPool, Origin]:
    """A connection pool allowed to reach loopback, and the origin of `peer`."""
    options: dict[str, Any] = {
        "allow": (ipaddress.ip_network("127.0.0.0/8"),),
        "ssl_context": ssl.create_default_context(),
        "connect_timeout_s": 5.0,
        "limit": 4,
        "limit_per_host": 0,
        "keepalive_s": 4.0,
        "body_limit": RESPONSE_BODY_LIMIT,
        **overrides,
    }
    port = int(peer.url.split(":")[2].split("/")[0])
    return ConnectionPool(**options), Origin(False, "127.0.0.1", port)


REQUEST = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


async def test_connection_pool_closes_a_connection_idle_past_its_keep_alive(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]],
) -> None:
    peer = await peer_with(writing(OK))
    pool, origin = pool_to(peer, keepalive_s=0.05)
    try:
        response, body = await pool.exchange(origin, REQUEST, asyncio.get_running_loop().time() + 5)

        await asyncio.wait_for(peer.closed_by_client.wait(), 5)
    finally:
        await pool.aclose()
    assert (response.status, body) == (200, b"ok")


async def test_connection_pool_times_out_a_request_waiting_for_a_capped_host(
    peer_with: Callable[[Answer], Awaitable[ScriptedPeer]],
) -> None:
    release = asyncio.Event()

    async def answer_when_released(writer: asyncio.StreamWriter, number: int) -> None:
        await release.wait()
        writer.write(OK)

    peer = await peer_with(answer_when_released)
    pool, origin = pool_to(peer, limit_per_host=1)
    now = asyncio.get_running_loop().time()
    try:
        first = asyncio.create_task(pool.exchange(origin, REQUEST, now + 30))
        with pytest.raises(TimeoutError):
            await pool.exchange(origin, REQUEST, now + 0.2)
        connections, requests = peer.connections, peer.requests
        release.set()
        response, _ = await first
    finally:
        await pool.aclose()
    assert (connections, requests) == (1, 1)
    assert response.status == 200
