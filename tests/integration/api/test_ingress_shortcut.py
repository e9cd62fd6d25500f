"""The publish path's direct way (`api.ingress`) answers exactly as uvicorn's own path, on real sockets on loopback.

Two servers of two apps on one runtime (so each has rate limit windows of its own): serve's, with the direct path,
and the same with uvicorn's httptools protocol. Each request goes to both; the answers must be the same bytes but
for the Date header's second and the new event ids. Faults inside a publish (a database outage, the request
deadline, an unexpected error, the server shutting down) are made on the shared runtime's publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import orjson
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chargewire.api.request_layer import RequestLayer
from chargewire.catalog import load_event_types
from chargewire.cli.api_server import ApiServer, server_config
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.store.tables import events
from chargewire.web import create_app
from tests.support.faults import in_a_thread, sqlite_write_locked
from tests.support.ocpp import eventually
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

MAX_BODY = 2048
BUDGET = 5
METER = load_event_types()["SessionMeterValuesNotification"].example
EVENT = orjson.dumps(METER)
_DATE = re.compile(rb"\r\ndate: [^\r]*")
_ID = re.compile(rb"evt_[0-9A-Z]{26}")


class _Side:
    """One server, its port, and tokens of its own (idempotency keys are per token): a publisher's, a reader's."""

    def __init__(self, server: ApiServer, port: int, publisher: str, reader: str) -> None:
        self.server = server
        self.port = port
        self.publisher = publisher
        self.reader = reader


class _Pair:
    """The direct path's server and uvicorn's own, and the runtime they share."""

    def __init__(self, shortcut: _Side, uvicorn_own: _Side, runtime: Runtime) -> None:
        self.shortcut = shortcut
        self.uvicorn_own = uvicorn_own
        self.runtime = runtime

    @property
    def sides(self) -> tuple[_Side, _Side]:
        return self.shortcut, self.uvicorn_own


async def _served(
    app_runtime: Runtime, http: str | None, access_log: bool = False
) -> tuple[ApiServer, asyncio.Task[None], _Side]:
    # Listening before the server starts: connections wait in the backlog until it accepts them.
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    config = server_config(create_app(app_runtime), "127.0.0.1", port)
    config.access_log = access_log
    if http is not None:
        config.http = http
    server = ApiServer(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    publisher = (await app_runtime.tokens.create("publisher", ["events:publish"])).text
    reader = (await app_runtime.tokens.create("reader", ["metrics:read"])).text
    return server, task, _Side(server, port, publisher, reader)


@contextlib.asynccontextmanager
async def _pair_of(settings: Settings, access_log: bool = False) -> AsyncIterator[_Pair]:
    changed = {"ingest_max_body_bytes": MAX_BODY, "ingest_rate_limit_per_minute": BUDGET}
    async with await Runtime.open(settings.model_copy(update=changed)) as opened:
        fast, fast_task, fast_side = await _served(opened, None, access_log)
        own, own_task, own_side = await _served(opened, "httptools", access_log)
        try:
            yield _Pair(fast_side, own_side, opened)
        finally:
            fast.should_exit = own.should_exit = True
            await asyncio.gather(fast_task, own_task)


@pytest.fixture
async def pair(settings: Settings, runtime: Runtime) -> AsyncIterator[_Pair]:
    """The direct path's server and uvicorn's own, on a runtime with a small body limit and ingest budget."""
    async with _pair_of(settings) as made:
        yield made


def _post(body: bytes, *headers: str, target: str = "/api/v1/events") -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    return f"POST {target} HTTP/1.1\r\nHost: chargewire.test\r\n{head}\r\n".encode() + body


def _publish(token: str | None, body: bytes = EVENT, *headers: str) -> bytes:
    auth = () if token is None else (f"Authorization: Bearer {token}",)
    return _post(body, *auth, "Content-Type: application/json", f"Content-Length: {len(body)}", *headers)


# Each case: the request, given the pair's tokens, and how many times it is sent on one connection.
CASES: dict[str, tuple[Callable[[_Side], bytes], int]] = {
    "202": (lambda p: _publish(p.publisher), 1),
    "202 replayed by idempotency key": (lambda p: _publish(p.publisher, EVENT, "Idempotency-Key: k-1"), 2),
    "401 without a token": (lambda p: _publish(None), 1),
    "401 unknown token": (lambda p: _publish("cw_not_a_token"), 1),
    "403 without the scope": (lambda p: _publish(p.reader), 1),
    "400 empty body": (lambda p: _publish(p.publisher, b""), 1),
    "400 not JSON": (lambda p: _publish(p.publisher, b"{nope"), 1),
    "422 invalid event": (lambda p: _publish(p.publisher, b'{"notification": "NoSuchThing"}'), 1),
    "422 invalid idempotency key": (lambda p: _publish(p.publisher, EVENT, f"Idempotency-Key: {'k' * 1000}"), 1),
    "413 declared": (lambda p: _publish(p.publisher, b"x" * (MAX_BODY + 1)), 1),
    "413 while chunked": (
        lambda p: _post(
            b"%x\r\n%s\r\n0\r\n\r\n" % (MAX_BODY + 1, b"x" * (MAX_BODY + 1)),
            f"Authorization: Bearer {p.publisher}",
            "Transfer-Encoding: chunked",
        ),
        1,
    ),
    "429 past the budget": (lambda p: _publish(p.publisher), BUDGET + 1),
    "404 another path (uvicorn's path on both)": (
        lambda p: _post(b"", f"Authorization: Bearer {p.publisher}", "Content-Length: 0", target="/api/v1/x"),
        1,
    ),
    "202 with a query (uvicorn's path on both)": (
        lambda p: _publish(p.publisher).replace(b"events ", b"events?a=1 ", 1),
        1,
    ),
}


async def _answers(port: int, request: bytes, count: int) -> list[bytes]:
    """Send `request` `count` times on one connection, one at a time; the raw answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answers = []
        for _ in range(count):
            writer.write(request)
            answers.append(await _answer(reader))
        return answers
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    return head + await reader.readexactly(length)


def _comparable(answer: bytes) -> bytes:
    return _ID.sub(b"evt_<id>", _DATE.sub(b"\r\ndate: <now>", answer))


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_shortcut_answers_byte_for_byte_as_uvicorns_own_path(pair: _Pair, case: str) -> None:
    make, count = CASES[case]
    shortcut = await _answers(pair.shortcut.port, make(pair.shortcut), count)
    own = await _answers(pair.uvicorn_own.port, make(pair.uvicorn_own), count)
    assert [_comparable(a) for a in shortcut] == [_comparable(a) for a in own]
    assert shortcut[-1].startswith(b"HTTP/1.1 " + case[:3].encode())


async def test_a_publish_is_answered_in_one_write_head_and_body_together(pair: _Pair) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.shortcut.port)
    writer.write(_publish(pair.shortcut.publisher))
    first = await reader.read(65536)  # one write of under a kilobyte arrives as one segment on loopback
    writer.close()
    head, _, body = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202")
    assert orjson.loads(body)["data"][0].startswith("evt_")


async def test_keep_alive_serves_several_publishes_on_one_connection(pair: _Pair) -> None:
    answers = await _answers(pair.shortcut.port, _publish(pair.shortcut.publisher, EVENT, "Idempotency-Key: k"), 5)
    assert [a[:12] for a in answers] == [b"HTTP/1.1 202"] * 5


async def test_a_pipelined_pair_is_answered_in_order_as_by_uvicorn(pair: _Pair) -> None:
    answers = []
    for side in (pair.shortcut, pair.uvicorn_own):
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        writer.write(_publish(side.publisher) + _publish(None))
        answers.append([_comparable(await _answer(reader)), _comparable(await _answer(reader))])
        writer.close()
    assert answers[0] == answers[1]
    assert [a[:12] for a in answers[0]] == [b"HTTP/1.1 202", b"HTTP/1.1 401"]


async def test_a_client_gone_mid_body_leaves_the_server_serving(pair: _Pair) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.shortcut.port)
    writer.write(_publish(pair.shortcut.publisher)[: -len(EVENT) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert await reader.read() == b""
    answers = await _answers(pair.shortcut.port, _publish(pair.shortcut.publisher), 1)
    assert answers[0].startswith(b"HTTP/1.1 202")


def _request_layer(server: ApiServer) -> RequestLayer:
    link: Any = server.config.loaded_app
    while not isinstance(link, RequestLayer):
        if isinstance(link, Starlette):
            # As the app builds it at its first request, if it has not served one yet.
            link.middleware_stack = link.middleware_stack or link.build_middleware_stack()
            link = link.middleware_stack
        else:
            link = link.app
    return link


async def _hanging_publish(*_: Any, **__: Any) -> list[str]:
    await asyncio.Event().wait()
    raise AssertionError("never set")


async def _locked_publish(*_: Any, **__: Any) -> list[str]:
    raise sqlite3.OperationalError("database is locked")


async def _failing_publish(*_: Any, **__: Any) -> list[str]:
    raise RuntimeError("a bug")


async def _answers_then_closed(port: int, request: bytes) -> tuple[bytes, bool]:
    """The answer to `request`, and whether the server closed the connection after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await _answer(reader)
    closed = await reader.read() == b""
    writer.close()
    return answer, closed


async def test_a_database_outage_mid_publish_is_answered_503_as_by_uvicorns_path(
    pair: _Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pair.runtime.publisher, "publish", _locked_publish)
    shortcut, own = [await _answers(side.port, _publish(side.publisher), 1) for side in pair.sides]
    assert [_comparable(a) for a in shortcut] == [_comparable(a) for a in own]
    assert shortcut[0].startswith(b"HTTP/1.1 503 ")


async def test_a_publish_past_the_deadline_is_answered_503_as_by_uvicorns_path(
    pair: _Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    for side in pair.sides:
        monkeypatch.setattr(_request_layer(side.server).deadline, "deadline_s", 0.1)
    monkeypatch.setattr(pair.runtime.publisher, "publish", _hanging_publish)
    shortcut, own = [await _answers(side.port, _publish(side.publisher), 1) for side in pair.sides]
    assert [_comparable(a) for a in shortcut] == [_comparable(a) for a in own]
    assert shortcut[0].startswith(b"HTTP/1.1 503 ")


async def test_an_unexpected_error_is_answered_500_logged_once_and_the_connection_closed(
    pair: _Pair, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pair.runtime.publisher, "publish", _failing_publish)
    answers = []
    for side in pair.sides:
        caplog.clear()
        answers.append(await _answers_then_closed(side.port, _publish(side.publisher)))
        logged = [r for r in caplog.records if r.name == "chargewire.api.errors" and r.levelno == logging.ERROR]
        assert len(logged) == 1
        assert logged[0].exc_info is not None
    (shortcut, shortcut_closed), (own, own_closed) = answers
    assert _comparable(shortcut) == _comparable(own)
    assert shortcut.startswith(b"HTTP/1.1 500 ")
    assert shortcut_closed
    assert own_closed


async def test_a_publish_under_way_at_shutdown_is_answered_with_connection_close_as_by_uvicorn(
    pair: _Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish = pair.runtime.publisher.publish
    entered: list[object] = []
    release = asyncio.Event()

    async def held(payloads: Any, **options: Any) -> list[str]:
        entered.append(payloads)
        await release.wait()
        return await publish(payloads, **options)

    monkeypatch.setattr(pair.runtime.publisher, "publish", held)
    answering = [asyncio.create_task(_answers_then_closed(side.port, _publish(side.publisher))) for side in pair.sides]
    await eventually(lambda: len(entered) == 2)
    for side in pair.sides:
        side.server.should_exit = True
    # Each server asks its connections to end once their answer is out.
    await eventually(
        lambda: all(
            not cast(HttpToolsProtocol, c).cycle.keep_alive
            for side in pair.sides
            for c in side.server.server_state.connections
        )
    )
    release.set()
    (shortcut, shortcut_closed), (own, own_closed) = await asyncio.gather(*answering)
    assert _comparable(shortcut) == _comparable(own)
    assert shortcut.startswith(b"HTTP/1.1 202 ")
    assert b"\r\nconnection: close\r\n" in shortcut
    assert shortcut_closed
    assert own_closed


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_the_access_log_line_of_a_publish_is_uvicorns(settings: Settings, runtime: Runtime) -> None:
    lines = _Lines()
    access = logging.getLogger("uvicorn.access")
    async with _pair_of(settings, access_log=True) as made:
        access.addHandler(lines)
        try:
            for side in made.sides:
                await _answers(side.port, _publish(side.publisher), 1)
        finally:
            access.removeHandler(lines)
    shortcut, own = (re.sub(r":\d+ - ", ":<port> - ", line) for line in lines.lines)
    assert shortcut == own
    assert shortcut.endswith('"POST /api/v1/events HTTP/1.1" 202')


async def test_a_body_stalled_past_the_deadline_is_answered_503_as_by_uvicorns_path(
    pair: _Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = []
    for side in pair.sides:
        monkeypatch.setattr(_request_layer(side.server).deadline, "deadline_s", 0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        writer.write(_publish(side.publisher)[: -len(EVENT) // 2])  # the rest of the body never comes
        answers.append(_comparable(await _answer(reader)))
        writer.close()
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 503 ")


async def test_a_publish_during_a_database_outage_is_answered_as_on_uvicorns_own_path_and_each_202_delivered_once(
    pair: _Pair, receiver: Receiver
) -> None:
    runtime = pair.runtime
    assert runtime.database.sqlite_file is not None
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    hook = {"callbackUrl": receiver.on("/outage", always())}
    await runtime.subscriptions.create(
        owner.token, {"via": "webhook", "notifications": [METER["notification"]], "webhook": hook}
    )
    sides = pair.sides

    async def publish_on_each(first_point: int) -> list[bytes]:
        sent = [
            _answers(side.port, _publish(side.publisher, orjson.dumps({**METER, "chargePointId": first_point + n})), 1)
            for n, side in enumerate(sides)
        ]
        return [answers[0] for answers in await asyncio.gather(*sent)]

    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        before = await publish_on_each(0)
        # Another process holds the write lock past the busy timeout: both servers' publishes wait, then are answered
        # 503 (the busy timeout's error, or the request deadline first on a loaded machine).
        async with in_a_thread(sqlite_write_locked(runtime.database.sqlite_file)):
            during = await publish_on_each(10)
        after = await publish_on_each(20)
        # A publish answered 503 at the request deadline may yet be stored (its write waits in SQLite's thread,
        # beyond cancelling): it is before those made after the outage in the one writer's queue, so counted here.
        async with runtime.database.reading() as connection:
            stored = (await connection.execute(select(func.count()).select_from(events))).scalar_one()
        received = await receiver.wait_for(stored, "/outage")
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)

    assert _comparable(during[0]) == _comparable(during[1])
    assert during[0].startswith(b"HTTP/1.1 503")
    assert b"\r\nretry-after: " in during[0].lower()
    assert all(answer.startswith(b"HTTP/1.1 202") for answer in before + after)
    delivered = Counter(orjson.loads(request.body)["chargePointId"] for request in received)
    assert {0, 1, 20, 21} <= set(delivered) <= {0, 1, 10, 11, 20, 21}
    assert set(delivered.values()) == {1}  # none twice
