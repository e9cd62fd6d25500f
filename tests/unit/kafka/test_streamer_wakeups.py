"""When a publish wakes the Kafka streamer: only while a Kafka subscription has a stream to look for."""

from __future__ import annotations

import asyncio
from datetime import datetime

from chargewire.config import Settings
from chargewire.kafka.streamer import KafkaStreamer
from chargewire.kafka.streams import StreamLook

# Long enough that no timed look comes while a test runs: every look after the first is a woken one.
POLL_INTERVAL_S = 3600.0
PUBLISHES = 20


class Streams:
    """A stream store with no ready stream, counting its looks; `exist` says whether any stream exists."""

    def __init__(self, exist: bool) -> None:
        self.exist = exist
        self.looks = 0
        self.looked = asyncio.Event()
        self.asked = asyncio.Event()

    async def look(self, _now: datetime, _worker_id: str | None = None) -> StreamLook:
        self.looks += 1
        self.looked.set()
        self.asked.set()
        return StreamLook([], self.exist)

    async def holders_heartbeats(self, _worker_id: str, _now: datetime) -> tuple[object, dict[str, object]]:
        return None, {}  # no other worker holds a stream


async def _publishes_seen(streams: Streams) -> int:
    """The looks made by a running streamer while `PUBLISHES` publishes wake it, one after another."""
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", worker_poll_interval_s=POLL_INTERVAL_S)
    streamer = KafkaStreamer(settings, streams, None, None, "wrk")  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(streamer.run(stop))
    async with asyncio.timeout(10):
        await streams.asked.wait()
        before = streams.looks
        for _ in range(PUBLISHES):
            streams.looked.clear()
            streamer.wake()
            if streams.exist:
                await streams.looked.wait()
            else:
                await asyncio.sleep(0.001)
        stop.set()
        await running
    return streams.looks - before


async def test_streamer_does_not_look_after_each_publish_when_no_kafka_subscription_has_a_stream() -> None:
    assert await _publishes_seen(Streams(exist=False)) <= 1  # the look that stop wakes


async def test_streamer_looks_after_each_publish_when_a_kafka_subscription_has_a_stream() -> None:
    assert await _publishes_seen(Streams(exist=True)) >= PUBLISHES


async def _streamer_looked_once(
    streams: Streams, **settings: float
) -> tuple[KafkaStreamer, asyncio.Event, asyncio.Task[None]]:
    """A running streamer, once its first look is over."""
    options = {"worker_poll_interval_s": POLL_INTERVAL_S, "worker_idle_poll_s": POLL_INTERVAL_S, **settings}
    streamer = KafkaStreamer(
        Settings(database_url="sqlite+aiosqlite:///:memory:", **options), streams, None, None, "wrk"
    )  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(streamer.run(stop))
    await streams.asked.wait()
    streams.looked.clear()
    return streamer, stop, running


async def test_streamer_with_no_kafka_subscription_looks_when_one_is_made_in_its_process() -> None:
    streams = Streams(exist=False)
    streamer, stop, running = await _streamer_looked_once(streams)

    streamer.streams_changed()

    async with asyncio.timeout(10):
        await streams.looked.wait()
        stop.set()
        await running


async def test_streamer_with_no_kafka_subscription_looks_once_after_a_burst_of_other_processes_commits() -> None:
    streams = Streams(exist=False)
    streamer, stop, running = await _streamer_looked_once(streams, worker_poll_interval_s=0.05)
    looks = streams.looks

    for _ in range(PUBLISHES):
        streamer.heard()
    async with asyncio.timeout(10):
        await streams.looked.wait()
    for _ in range(5):
        await asyncio.sleep(0)

    assert streams.looks == looks + 1
    stop.set()
    await running
