"""A month and a half of a 10,000-charge-point operator's traffic in compressed time: does the database level off?

The sizing model's steady rate for 10,000 charge points is ~40 events/s (../shared/reference/ocpp-mapping.md),
3,456,000 events a day. This replays `--scale` of it (default 0.5 %: 17,280 events a day, 720 an hour) for
`--days` simulated days (default 45) on each store, with 30-day retention, by moving the process's clock
(`chargewire.clock.shift_to`) instead of waiting. Each simulated hour, with the clock at that hour:

- the hour's events go through the real publish path (`Publisher.publish`, batches of 480), a mix of meter
  values (85 %), status (8 %), session updates (5 %) and session start/stop (2 %), to two webhook subscriptions
  that take every one of them: two deliveries per event;
- every due delivery is claimed and its attempt recorded through the dispatcher's own store calls
  (`claim_due_deliveries`, `record_attempts`), without HTTP: 3 % of deliveries fail once (a 503) and are
  retried an hour later, when they succeed; 0.1 % fail for good (a 410) and are kept for the 90-day resend
  window; the rest are delivered at once.

At each day's end the clock moves to the next midnight and one expiry run goes (`Expirer.run_once`: expire,
give space back, measure every table). Per day this records the database size (the sum of every table's size
that run measured), the history tables' rows, the publish and delivery rates over the whole day's traffic, and
the expiry run's time: the whole run, and the part before measuring the tables (removing rows or dropping
partitions, and SQLite's incremental vacuum).

Usage: python -m bench.retention [--scale 0.01] [--days 45] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, table

from bench.common import BENCH_SECRET_KEY, RESULTS_DIR, backend_database, git_commit, write_result
from bench.retention_report import write_report
from chargewire import clock
from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.expiry import Expirer
from chargewire.ids import new_ids
from chargewire.models import Attempt, DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.retention import RetentionPolicy

EVENTS_PER_S = 40  # the sizing model's steady rate for 10,000 charge points
HOURS = 24
BATCH = 480
CLAIM = 1000
WORKER = "wrk_retention_bench"
RETRY_SHARE, FAILED_SHARE = 0.03, 0.001
RETRY_AFTER = timedelta(minutes=30)  # before the next simulated hour: retried then
POLICY = RetentionPolicy(timedelta(days=30), timedelta(days=90), 500)
MIX: tuple[tuple[str, int], ...] = (
    ("SessionMeterValuesNotification", 85),
    ("HardwareStatusNotification", 8),
    ("SessionUpdateNotification", 5),
    ("SessionStartStopNotification", 2),
)
HISTORY = ("events", "deliveries", "attempts")
_CATALOG = load_event_types()


@dataclass(frozen=True, slots=True)
class Day:
    """What one simulated day did and measured."""

    day: int
    events: int
    deliveries: int
    publish_eps: float
    delivery_ps: float
    expiry_s: float
    expire_s: float
    removed: dict[str, int]
    size_bytes: int
    rows: dict[str, int]


def hourly_events(scale: float) -> list[int]:
    """Each simulated hour's events at `scale` of the steady rate, summing to the day's total."""
    total = round(EVENTS_PER_S * 86_400 * scale)
    return [total // HOURS + (1 if hour < total % HOURS else 0) for hour in range(HOURS)]


def event_names(count: int) -> list[str]:
    """`count` event names in the sizing model's mix (meter values the most), interleaved."""
    cycle = [name for name, share in MIX for _ in range(share)]
    return [cycle[(index * 37) % len(cycle)] for index in range(count)]


def outcome_of(delivery_id: str, number: int) -> DeliveryStatus:
    """How attempt `number` of a delivery ends: a few fail once and are then delivered, a few fail for good.

    Decided by the delivery id's hash, so a retried delivery is recognised again on its next attempt.
    """
    if number > 1:
        return DeliveryStatus.DELIVERED
    share = zlib.crc32(delivery_id.encode()) / 2**32
    if share < FAILED_SHARE:
        return DeliveryStatus.FAILED
    return DeliveryStatus.PENDING if share < FAILED_SHARE + RETRY_SHARE else DeliveryStatus.DELIVERED


def record_for(delivery: ClaimedDelivery, attempt_id: str, now: datetime) -> AttemptRecord:
    """The record the dispatcher would write for this delivery's attempt at `now`."""
    number = delivery.attempt_count + 1
    status = outcome_of(delivery.id, number)
    code, outcome, error = {
        DeliveryStatus.DELIVERED: (200, "delivered", None),
        DeliveryStatus.PENDING: (503, "retry", "HTTP 503 Service Unavailable"),
        DeliveryStatus.FAILED: (410, "failed", "HTTP 410 Gone"),
    }[status]
    attempt = Attempt(
        id=attempt_id,
        delivery_id=delivery.id,
        number=number,
        started_at=now,
        duration_ms=12.5,
        outcome=outcome,
        status_code=code,
        error_class=None if error is None else "http_status",
        error_message=error,
        request_headers={"content-type": "application/json", "webhook-id": delivery.id},
        response_headers={"content-length": "0"},
    )
    retry_at = now + RETRY_AFTER if status is DeliveryStatus.PENDING else None
    return AttemptRecord(attempt, delivery.subscription_id, WORKER, status, retry_at, error)


async def deliver_due(store: DeliveryStore) -> int:
    """Claim every due delivery and record its attempt, as a worker's dispatcher would; returns how many."""
    done = 0
    while True:
        now = clock.utcnow()
        claimed = await store.claim_due_deliveries(
            ClaimRequest(WORKER, now, now + timedelta(minutes=1), CLAIM, {Via.WEBHOOK: CLAIM, Via.KAFKA: CLAIM})
        )
        if not claimed:
            return done
        attempt_ids = new_ids("att", len(claimed))
        await store.record_attempts([record_for(d, a, now) for d, a in zip(claimed, attempt_ids, strict=True)])
        done += len(claimed)


async def _subscribe(runtime: Runtime) -> None:
    """Two webhook subscriptions to every event of the mix."""
    owner = await runtime.tokens.create("bench", ["notifications:manage"])
    for number in (1, 2):
        body = {
            "via": "webhook",
            "notifications": [name for name, _share in MIX],
            "webhook": {"callbackUrl": f"http://127.0.0.1:9/{number}"},
        }
        await runtime.subscriptions.create(owner.token, body)


async def _one_day(runtime: Runtime, expirer: Expirer, start: datetime, day: int, hours: list[int]) -> Day:
    """Publish and deliver a day's traffic hour by hour, then expire at the next midnight."""
    published = delivered = 0
    publish_s = deliver_s = 0.0
    for hour, count in enumerate(hours):
        clock.shift_to(start + timedelta(days=day - 1, hours=hour, minutes=5))
        names = event_names(count)
        began = time.perf_counter()
        for first in range(0, count, BATCH):
            await runtime.publisher.publish([_CATALOG[name].example for name in names[first : first + BATCH]])
        publish_s += time.perf_counter() - began
        published += count
        began = time.perf_counter()
        delivered += await deliver_due(runtime.delivery_store)
        deliver_s += time.perf_counter() - began
    clock.shift_to(start + timedelta(days=day, seconds=1))
    began = time.perf_counter()
    run = await expirer.run_once()
    expiry_s = time.perf_counter() - began
    if run is None or run.started_at is None or run.finished_at is None:
        raise RuntimeError("another process holds the expiry lease")  # the bench's database is its own
    rows = await _counts(runtime)
    return Day(
        day=day,
        events=published,
        deliveries=delivered,
        publish_eps=round(published / publish_s, 1),
        delivery_ps=round(delivered / deliver_s, 1),
        expiry_s=round(expiry_s, 3),
        expire_s=round((run.finished_at - run.started_at).total_seconds(), 3),
        removed=run.removed,
        size_bytes=sum(size.bytes for size in run.tables),
        rows=rows,
    )


async def _counts(runtime: Runtime) -> dict[str, int]:
    """The history tables' exact row counts (PostgreSQL's measured ones are estimates)."""
    async with runtime.database.reading() as connection:
        return {
            name: int((await connection.execute(select(func.count()).select_from(table(name)))).scalar_one())
            for name in HISTORY
        }


def _settings(url: str, workdir: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=workdir,
        secret_key=BENCH_SECRET_KEY,
        delivery_allow_networks=["127.0.0.0/8"],
        ingest_max_batch=BATCH,
    )


async def replay(url: str, workdir: Path, scale: float, days: int) -> list[Day]:
    """Replay `days` simulated days at `scale` on the database at `url`, printing each day as it ends."""
    database = create_database(url)
    await migrate.upgrade(database)
    await database.aclose()
    # Day 1 starts at the next midnight but one: the migration's day (PostgreSQL's historic partition) is over.
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=2)
    hours = hourly_events(scale)
    result = []
    async with await Runtime.open(_settings(url, workdir)) as runtime:
        await _subscribe(runtime)
        expirer = Expirer(runtime.retention, POLICY, WORKER, interval_s=300)
        # A new installation's first run, while the database is empty (SQLite then turns incremental vacuum on).
        clock.shift_to(start)
        await expirer.run_once()
        for day in range(1, days + 1):
            measured = await _one_day(runtime, expirer, start, day, hours)
            print(_line(measured), flush=True)
            result.append(measured)
    clock.shift_to(datetime.now(UTC))
    return result


def _line(day: Day) -> str:
    return (
        f"day {day.day:>2}: {day.size_bytes / 2**20:8.1f} MiB, {day.rows['events']:>9} events kept, "
        f"publish {day.publish_eps:>8.0f} ev/s, deliver {day.delivery_ps:>8.0f}/s, expiry {day.expiry_s:6.2f} s "
        f"({day.expire_s:.2f} s before measuring), "
        f"removed {day.removed}"
    )


def run_backend(backend: str, scale: float, days: int) -> dict[str, Any]:
    """One store's replay on a fresh database, with the machine's load before and after (it is shared)."""
    load_before, commit = os.getloadavg(), git_commit()  # the commit the replay runs, whatever is committed later
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="chargewire-retention-") as work,
        backend_database(backend, Path(work)) as url,
    ):
        measured = asyncio.run(replay(url, Path(work), scale, days))
    return {
        "git_commit": commit,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - began, 1),
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in os.getloadavg()],
        "days": [asdict(day) for day in measured],
    }


def _earlier_stores(scale: float, days: int) -> dict[str, Any]:
    """The stores of the last result at the same scale and days: a run of one store keeps the other's figures."""
    path = RESULTS_DIR / "retention.json"
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    same = earlier.get("scale") == scale and len(next(iter(earlier["stores"].values()))["days"]) == days
    return dict(earlier["stores"]) if same else {}


def main(arguments: Sequence[str] | None = None) -> None:
    """Parse the arguments, replay on each store, and write the results, the table and the chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=0.005, help="share of the sizing model's 40 events/s")
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--backends", default="sqlite,postgresql")
    options = parser.parse_args(arguments)
    ran = {backend: run_backend(backend, options.scale, options.days) for backend in options.backends.split(",")}
    stores = {**_earlier_stores(options.scale, options.days), **ran}
    result = {
        "scale": options.scale,
        "events_per_day": sum(hourly_events(options.scale)),
        "subscriptions": 2,
        "retry_share": RETRY_SHARE,
        "failed_share": FAILED_SHARE,
        "retention_days": {"delivered": POLICY.delivered.days, "failed": POLICY.failed.days},
        "stores": stores,
    }
    write_report(write_result("retention", result))


if __name__ == "__main__":
    main()
