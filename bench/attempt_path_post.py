"""CPU per webhook POST and answer, the channel alone: `WebhookChannel.send` one attempt after another.

Builds one ~1 KB `OutboundMessage` per attempt (its own delivery id, as the dispatcher does) and sends it to
`bench.receiver` (its own process, answering 202 on a keep-alive connection), awaiting each answer before the
next. So only the channel is measured: headers, signatures, the request's bytes, the pool, the write, the
answer's parse and the result. Figures per attempt: this thread's CPU time, the process's (user and system
apart) and, with `--profile`, cProfile's calls. Nothing runs on a timer here, so `valgrind --tool=callgrind`
over two runs of different `--attempts` gives the instructions of the difference alone (the start-up cancels
out; run once before, so that neither run compiles the checkout's bytecode).
`--code DIR` imports chargewire from another checkout (a worktree of an older commit), for A/B runs.
Usage: python -m bench.attempt_path_post [--attempts 2000] [--warm-up 200] [--code DIR] [--profile F]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PAYLOAD_BYTES = 1024


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
            token_text="cw_bench_token_0123456789abcdef",
            signing_secrets=("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",),
        )
        for index in range(first, first + count)
    ]


async def _sends(channel: Any, messages: list[Any]) -> None:
    for message in messages:
        result = await channel.send(message)
        if not result.succeeded:
            raise RuntimeError(f"attempt failed: {result.error!r}")


async def _measure(attempts: int, warm_up: int, profile: Path | None) -> dict[str, Any]:
    from bench.receiver import running_receiver
    from chargewire.channels.webhook import WebhookChannel
    from chargewire.config import Settings

    with running_receiver() as receiver:
        settings = Settings(delivery_allow_networks="127.0.0.0/8")
        channel = WebhookChannel(settings)
        try:
            url = receiver.url()
            await _sends(channel, _messages(0, warm_up, url))
            messages = _messages(warm_up, attempts, url)
            profiler = cProfile.Profile(time.thread_time) if profile else None
            started, times = time.thread_time(), os.times()
            if profiler:
                profiler.enable()
            await _sends(channel, messages)
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
    parser.add_argument("--profile", type=Path, help="a cProfile of the measured attempts (and calls per attempt)")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import uvloop

    from bench.common import git_commit

    figures = uvloop.run(_measure(args.attempts, args.warm_up, args.profile))
    print(json.dumps({"commit": git_commit(args.code), **figures}))


if __name__ == "__main__":
    main()
