"""CPU per webhook POST and answer, the channel alone: `WebhookChannel.send` one attempt after another.

Builds one ~1 KB `OutboundMessage` per attempt (its own delivery id, as the dispatcher does) and sends it to
`bench.receiver` (its own process, answering 202 on a keep-alive connection), awaiting each answer before the
next. So only the channel is measured: headers, signatures, the request's bytes, the pool, the write, the
answer's parse and the result. Figures per attempt: this thread's CPU time, the process's (user and system
apart) and, with `--profile`, cProfile's calls. Nothing runs on a timer here, so `valgrind --tool=callgrind`
over two runs of different `--attempts` gives the instructions of the difference alone (the start-up cancels
out; run once before, so that neither run compiles the checkout's bytecode).
`--through-dispatcher` sends the same messages as deliveries handed to a `Dispatcher` one after another
(`reserve`, `take`: its task, queue, attempt stage, outcome and metrics listener), each next one when the last
is recorded, with the subscription's target in memory, the metrics listener and a store that makes the record's rows
(`attempt_writes.attempt_rows`, for SQLite) without writing them: the attempt path of `serve` less the database.
`--code DIR` imports chargewire from another checkout (a worktree of an older commit), for A/B runs.
Usage: python -m bench.attempt_path_post [--attempts 2000] [--warm-up 200] [--through-dispatcher] [--code DIR]
[--profile F]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import os
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

PAYLOAD_BYTES = 1024
TOKEN = "cw_bench_token_0123456789abcdef"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _messages(first: int, count: int, url: str) -> list[Any]:
    """One ~1 KB message per attempt, each with its own delivery id, all to one subscription."""
    from chargewire.channels.base import OutboundMessage
    from chargewire.models import Subscription

    now = datetime.now(UTC)
    subscription = Subscription(
        id="sub_bench",
        via="webhook",
        notifications=("SessionMeterValuesNotification",),
        token_id="tok_bench",
        api_version=1,
        created_at=now,
        updated_at=now,
        callback_url=url,
    )
    payload = b'{"meterValues":"' + b"x" * (PAYLOAD_BYTES - 18) + b'"}'
    return [
        OutboundMessage(
            delivery_id=f"dlv_{index:020d}",
            event_id=f"evt_{index:020d}",
            event_name="SessionMeterValuesNotification",
            payload=payload,
            entity_id=None,
            subscription=subscription,
            attempt_number=1,
            tenant="bench",
            token_text=TOKEN,
            signing_secrets=(SECRET,),
        )
        for index in range(first, first + count)
    ]


async def _sends(channel: Any, messages: list[Any]) -> None:
    for message in messages:
        result = await channel.send(message)
        if not result.succeeded:
            raise RuntimeError(f"attempt failed: {result.error!r}")


class _RowsOnly:
    """The dispatcher's store, as far as a hand-off's attempt uses it: records become their rows, unwritten."""

    def __init__(self) -> None:
        from sqlalchemy.dialects import sqlite

        from chargewire.store.dialects.engine import JSON_CODEC

        self._dialect = sqlite.dialect(**JSON_CODEC)  # as `serve`'s engine has it
        self.rows = 0

    async def record_attempts(self, records: Any) -> None:
        from chargewire.store.attempt_writes import attempt_rows

        self.rows += len(attempt_rows(self._dialect, records))


class _Through:
    """Sends messages as deliveries handed to a `Dispatcher` (`reserve`, `take`), each once the last is recorded."""

    def __init__(self, settings: Any, channel: Any, subscription: Any) -> None:
        from chargewire.dispatch.dispatcher import Dispatcher
        from chargewire.dispatch.metrics import DeliveryMetrics
        from chargewire.dispatch.targets import DeliveryTarget

        self._targets = {subscription.id: DeliveryTarget(subscription, TOKEN, (SECRET,))}
        self.store = _RowsOnly()
        self.dispatcher = Dispatcher(settings, cast(Any, self.store), cast(Any, self), {"webhook": channel})
        self.dispatcher.add_listener(self._attempted)
        self.dispatcher.add_listener(DeliveryMetrics().observe_attempts)  # as `serve`'s runtime adds it
        self.dispatcher._accepting = True  # as `run` sets it; its claim and flush loops are not run here

    async def targets(self, subscription_ids: Any) -> dict[str, Any]:
        return {subscription_id: self._targets[subscription_id] for subscription_id in subscription_ids}

    def _attempted(self, deliveries: Any, results: Any, records: Any) -> None:
        if not results[0].succeeded:
            raise RuntimeError(f"attempt failed: {results[0].error!r}")

    async def sends(self, messages: list[Any]) -> None:
        from chargewire.store.delivery_records import ClaimedDelivery
        from chargewire.store.delivery_writes import NewDelivery

        now = datetime.now(UTC)
        for message in messages:
            new = NewDelivery(message.delivery_id, message.event_id, message.subscription.id, message.event_name)
            lease = self.dispatcher.reserve([new])
            if lease is None:
                raise RuntimeError("the dispatcher took no hand-off")
            delivery = ClaimedDelivery(
                message.delivery_id,
                message.event_id,
                message.subscription.id,
                message.event_name,
                0,
                None,
                message.payload,
                None,
                now,
            )
            self.dispatcher.take(lease, [delivery])
            while self.dispatcher._tasks:
                await asyncio.gather(*list(self.dispatcher._tasks))
            await self.dispatcher._records.flush()


async def _measure(attempts: int, warm_up: int, profile: Path | None, through: bool) -> dict[str, Any]:
    from bench.receiver import running_receiver
    from chargewire.channels.webhook import WebhookChannel
    from chargewire.config import Settings

    with running_receiver() as receiver:
        settings = Settings(delivery_allow_networks="127.0.0.0/8")
        channel = WebhookChannel(settings)
        try:
            url = receiver.url()
            messages = _messages(0, warm_up + attempts, url)
            sends: Any = functools.partial(_sends, channel)
            if through:
                sends = _Through(settings, channel, messages[0].subscription).sends
            await sends(messages[:warm_up])
            messages = messages[warm_up:]
            profiler = cProfile.Profile(time.thread_time) if profile else None
            started, times = time.thread_time(), os.times()
            if profiler:
                profiler.enable()
            await sends(messages)
            if profiler:
                profiler.disable()
            cpu, after = time.thread_time() - started, os.times()
        finally:
            await channel.aclose()
    figures: dict[str, Any] = {
        "attempts": attempts,
        "cpu_us_per_attempt": round(cpu / attempts * 1e6, 1),
        "user_us_per_attempt": round((after.user - times.user) / attempts * 1e6, 1),
        "system_us_per_attempt": round((after.system - times.system) / attempts * 1e6, 1),
    }
    if profiler and profile:
        profiler.dump_stats(profile)
        stats = pstats.Stats(str(profile))
        calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
        python = sum(entry[1] for key, entry in stats.stats.items() if key[0] != "~")  # type: ignore[attr-defined]
        figures["calls_per_attempt"] = round(calls / attempts, 1)
        figures["python_calls_per_attempt"] = round(python / attempts, 1)
    return figures


def main() -> None:
    """Send the attempts and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--through-dispatcher", action="store_true", help="hand each to a Dispatcher (see above)")
    parser.add_argument("--profile", type=Path, help="a cProfile of the measured attempts (and calls per attempt)")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import uvloop

    from bench.common import git_commit

    figures = uvloop.run(_measure(args.attempts, args.warm_up, args.profile, args.through_dispatcher))
    print(json.dumps({"commit": git_commit(args.code), **figures}))


if __name__ == "__main__":
    main()
