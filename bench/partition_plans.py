"""Which of chargewire's queries prune partitions on PostgreSQL, whose history tables are partitioned by day.

Migration 0009 partitions events, deliveries and attempts by range of id (`postgresql_partitions`), one partition
per day. This gives a throwaway database a month of them: the (empty) historic partition is dropped and the
days from 29 back to today are made (a month inside the retention), beside the week ahead the migration made
and the default one. Then the real services run their real queries on it with `auto_explain` logging every
plan, and this prints, for each query that reads a history table, how many of the table's partitions its plan
names.

Usage: python -m bench.partition_plans [--plans FILE]   (FILE: where to write the plans themselves)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from bench.common import BENCH_SECRET_KEY
from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.devtools.postgres import PostgresCluster, throwaway_cluster
from chargewire.dispatch.expiry import retention_policy
from chargewire.models import Via
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_log import DeliveryFilter
from chargewire.store.dialects.postgresql_partitions import DAYS_AHEAD, PARTITIONED, day_partition

BOOT = load_event_types()["BootNotification"].example
DAYS_BACK = 29  # a month inside the 30-day retention: the run expires none of them
_PLAN = re.compile(r"\n(?=\S[^\n]*LOG:  duration: )")


def past_days(today: datetime) -> list[str]:
    """Statements that replace the empty historic partitions with one partition per day, DAYS_BACK days back."""
    statements = []
    for table in PARTITIONED:
        statements += [f"ALTER TABLE {table} DETACH PARTITION {table}_history", f"DROP TABLE {table}_history"]
        statements += [day_partition(table, today - timedelta(days=offset)) for offset in range(DAYS_BACK + 1)]
    return statements


async def _prepare(url: str, settings: Settings) -> str:
    """Migrate, make the past days' partitions, fill with a webhook and a Kafka subscription's traffic; turn
    auto_explain on."""
    database = create_database(url)
    await migrate.upgrade(database)
    async with database.transaction() as connection:
        for statement in past_days(utcnow()):
            await connection.execute(text(statement))
    await database.aclose()
    async with await Runtime.open(settings) as runtime:
        owner = await runtime.tokens.create("owner", ["notifications:manage"])
        webhook = {
            "via": "webhook",
            "notifications": ["BootNotification"],
            "webhook": {"callbackUrl": "http://127.0.0.1:9/"},
        }
        kafka = {
            "via": "kafka",
            "notifications": ["BootNotification"],
            "kafka": {"topic": "t", "brokers": ["127.0.0.1:9"]},
        }
        subscription_id = (await runtime.subscriptions.create(owner.token, webhook)).subscription.id
        await runtime.subscriptions.create(owner.token, kafka)
        for _ in range(5):
            await runtime.publisher.publish([{**BOOT, "chargePointId": index} for index in range(200)])
        async with runtime.database.transaction() as connection:
            await connection.execute(text("ANALYZE"))
            name = url.rsplit("/", 1)[-1]
            for setting in ("log_min_duration = 0", "log_nested_statements = on"):
                await connection.execute(text(f"ALTER DATABASE {name} SET auto_explain.{setting}"))
            await connection.execute(text(f"ALTER DATABASE {name} SET session_preload_libraries = 'auto_explain'"))
    return subscription_id


async def _run_queries(settings: Settings, subscription_id: str) -> None:
    """The reads of the delivery loop, the log, the overview, Kafka streams and expiry, once each."""
    async with await Runtime.open(settings) as runtime:
        now = utcnow()
        store = runtime.delivery_store
        caps = {Via.WEBHOOK: 50, Via.KAFKA: 50}
        claimed = await store.claim_due_deliveries(
            ClaimRequest("wrk_plans", now, now + timedelta(minutes=1), 100, caps, ())
        )
        await store.list_deliveries(DeliveryFilter(subscription_id=subscription_id), None, 50)
        await store.list_deliveries(DeliveryFilter(since=now - timedelta(hours=1), until=now), None, 50)
        await store.list_attempts(claimed[0].id)
        await store.queue_depth(now)
        for stream in await runtime.stream_store.ready_streams(now):
            first = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 100)
            # A running stream's next read, bounded by the first's last event.
            await runtime.stream_store.read(stream, ["BootNotification"], first.position, 100)
        await runtime.overview.snapshot()
        await runtime.retention.expire(now, retention_policy(settings))  # the row path; no partition is old enough


def summarize(log: str) -> list[tuple[str, dict[str, int]]]:
    """Each distinct query on a history table, with how many partitions of each table its plan visits."""
    seen: dict[str, dict[str, int]] = {}
    for entry in _PLAN.split(log):
        if "plan:" not in entry or "Query Text:" not in entry:
            continue
        first, *rest = entry.split("Query Text:", 1)[1].split("\n\t")
        # The statement's lines go on while they start with an SQL keyword (upper case); the plan's do not.
        query = " ".join([first, *itertools.takewhile(lambda line: line.strip().split(" ")[0].isupper(), rest)])
        query = query.strip()
        visited: dict[str, set[str]] = {}
        for table, partition in re.findall(r" on (events|deliveries|attempts)_(p\d{8}|history|default)\b", entry):
            visited.setdefault(table, set()).add(partition)
        if visited:
            seen.setdefault(query, {table: len(parts) for table, parts in sorted(visited.items())})
    return [(_shortened(query), visited) for query, visited in seen.items()]


def _shortened(query: str) -> str:
    """A query's start and end: where they differ, two statements of the same start tell apart by their end."""
    return query if len(query) <= 200 else f"{query[:120]} … {query[-75:]}"


def measure(cluster: PostgresCluster, plans: Path | None) -> None:
    """Convert, run, and print the partitions each query visits."""
    url = cluster.create_database("plans")
    settings = Settings(
        database_url=url,
        data_dir=cluster.data_dir,
        secret_key=BENCH_SECRET_KEY,
        delivery_allow_networks=["127.0.0.0/8"],
    )
    subscription_id = asyncio.run(_prepare(url, settings))
    asyncio.run(_run_queries(settings, subscription_id))
    log = (cluster.data_dir / "server.log").read_text()
    if plans is not None:
        plans.write_text(log)
    total = DAYS_BACK + 1 + DAYS_AHEAD + 1
    print(f"partitions per table: {total}")
    for query, visited in summarize(log):
        shown = ", ".join(f"{table} {count}" for table, count in visited.items())
        print(f"{shown:<32} {query}")


def main() -> None:
    """Parse the arguments and measure on a throwaway cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plans", type=Path, help="write the server log with every plan here")
    arguments = parser.parse_args()
    with throwaway_cluster() as cluster:
        measure(cluster, arguments.plans)


if __name__ == "__main__":
    main()
