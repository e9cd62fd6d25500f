"""Claiming due deliveries on both backends: due order, the cap per subscription, and what is never claimed.

The subscriptions are webhooks, but for a Kafka subscription's failed records: its new events are streamed from
the log, not claimed.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.dialects import postgresql
from chargewire.store.dialects.postgresql_replans import FIRST_REPLAN_S, PlanAge
from chargewire.store.tables import deliveries, subscriptions
from tests.support.backlog import partition_by_day, pile_up_pending
from tests.support.plans import driver_queries, driver_steps, plan_of, sent_statements

BOOT = load_event_types()["BootNotification"].example
CAPS = {Via.WEBHOOK: 3, Via.KAFKA: 100}
# The due index by its SQLite name and its PostgreSQL partitions' names.
DUE_INDEX = re.compile(r"ix_deliveries_due|_status_next_attempt_at")
# A sort of the due rows: PostgreSQL's Sort or Incremental Sort node, SQLite's temporary B-tree.
SORT = re.compile(r"(?:^|->  )(?:Incremental )?Sort$|TEMP B-TREE", re.MULTILINE)
PRIMARY_KEY = re.compile(r"sqlite_autoindex_deliveries_1|deliveries_\w+_pkey")
# A backlog in several day partitions, big enough that PostgreSQL reads it by index.
BACKLOG_DAYS = 3
BACKLOG_PER_DAY = 5_000


async def _subscribe(runtime: Runtime, via: Via, name: str) -> str:
    owner = await runtime.tokens.create(name, ["notifications:manage"])
    body: dict[str, object] = {"via": via.value, "notifications": ["BootNotification"]}
    if via is Via.KAFKA:
        body["kafka"] = {"topic": name, "brokers": ["127.0.0.1:9"]}
    else:
        body["webhook"] = {"callbackUrl": f"http://127.0.0.1:9/{name}"}
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


async def _claim(
    runtime: Runtime, limit: int, excluded: tuple[str, ...] = (), caps: dict[Via, int] = CAPS
) -> list[ClaimedDelivery]:
    now = utcnow()
    return await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest("wrk_test", now, now + timedelta(minutes=1), limit, caps, excluded)
    )


@pytest.fixture
def boots() -> list[dict[str, object]]:
    """Ten boot notifications, each about its own charge point."""
    return [{**BOOT, "chargePointId": 5000 + index} for index in range(10)]


async def test_a_claim_takes_due_deliveries_in_publish_order_up_to_its_limit(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _subscribe(runtime, Via.WEBHOOK, "orders")
    await runtime.publisher.publish(boots)
    uncapped = {Via.WEBHOOK: 100}

    first = await _claim(runtime, 4, caps=uncapped)
    rest = await _claim(runtime, 100, caps=uncapped)

    assert [delivery.entity_id for delivery in first + rest] == [str(5000 + index) for index in range(10)]
    assert await _claim(runtime, 100, caps=uncapped) == []  # every one is leased now


async def test_a_subscription_at_its_cap_leaves_the_rest_of_the_claim_to_others_behind_it(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    busy = await _subscribe(runtime, Via.WEBHOOK, "busy")
    await runtime.publisher.publish(boots)  # ten deliveries for the busy webhook, due first
    later = await _subscribe(runtime, Via.WEBHOOK, "later")
    await runtime.publisher.publish(boots[:4])  # four more for each subscription, due after them

    claimed = await _claim(runtime, 5)

    by_subscription = [delivery.subscription_id for delivery in claimed]
    assert by_subscription.count(busy) == CAPS[Via.WEBHOOK]
    assert by_subscription.count(later) == 2  # the rest of the five
    assert [delivery.entity_id for delivery in claimed if delivery.subscription_id == busy] == ["5000", "5001", "5002"]


async def test_excluded_and_disabled_subscriptions_have_nothing_claimed(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    excluded = await _subscribe(runtime, Via.WEBHOOK, "excluded")
    disabled = await _subscribe(runtime, Via.WEBHOOK, "disabled")
    open_one = await _subscribe(runtime, Via.WEBHOOK, "open")
    await runtime.subscription_store.set_enabled(disabled, False, utcnow(), "test")
    await runtime.publisher.publish(boots[:2])

    claimed = await _claim(runtime, 100, excluded=(excluded,))

    assert {delivery.subscription_id for delivery in claimed} == {open_one}
    assert len(claimed) == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_claim_on_sqlite_sends_its_scan_lease_and_payload_read_straight_on_the_driver_past_sqlalchemy(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _subscribe(runtime, Via.WEBHOOK, "hooks")
    await runtime.publisher.publish(boots[:3])

    with sent_statements(runtime.database, "", steps=False) as through_cursor, driver_steps(runtime.database) as steps:
        claimed = await _claim(runtime, 3)

    assert [delivery.entity_id for delivery in claimed] == ["5000", "5001", "5002"]
    assert through_cursor == []
    assert [step.sql.split(maxsplit=1)[0] for step in steps] == ["SELECT", "UPDATE", "SELECT"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_claim_on_sqlite_leaving_subscriptions_out_walks_past_their_rows_in_the_driver_s_thread_not_the_loop_s(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    saturated = await _subscribe(runtime, Via.WEBHOOK, "saturated")
    open_one = await _subscribe(runtime, Via.WEBHOOK, "open")
    await runtime.publisher.publish(boots[:2])

    with driver_steps(runtime.database) as steps:
        claimed = await _claim(runtime, 100, excluded=(saturated,))

    assert {delivery.subscription_id for delivery in claimed} == {open_one}
    scans = [step for step in steps if step.sql.startswith("SELECT deliveries.id, deliveries.subscription_id")]
    assert [step.in_event_loop for step in scans] == [False]


async def _ordered_rows(runtime: Runtime, boots: list[dict[str, object]], waiting: int, later_due: int) -> str:
    """A Kafka subscription with a pending row per boot, as failed records leave them: the row at `waiting`
    waits for its retry, and the rows from `later_due` on fell due before the ones ahead of them."""
    subscription_id = await _subscribe(runtime, Via.WEBHOOK, "ordered")
    await runtime.publisher.publish(boots)
    now = utcnow()
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(via=Via.KAFKA.value)
        )
        rows = (await connection.execute(select(deliveries.c.id).order_by(deliveries.c.id))).scalars().all()
        for place, delivery_id in enumerate(rows):
            due_at = now + timedelta(minutes=5) if place == waiting else now - timedelta(seconds=place >= later_due)
            await connection.execute(
                update(deliveries).where(deliveries.c.id == delivery_id).values(next_attempt_at=due_at)
            )
    return subscription_id


async def test_a_kafka_subscriptions_rows_are_claimed_in_publishing_order_up_to_the_first_that_waits(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _ordered_rows(runtime, boots, waiting=6, later_due=3)  # rows 3-5 and 7-9 fell due first

    first = await _claim(runtime, 2)
    while_first_in_flight = await _claim(runtime, 100)
    async with runtime.database.transaction() as connection:
        sent = deliveries.c.id.in_([delivery.id for delivery in first])
        await connection.execute(update(deliveries).where(sent).values(status=DeliveryStatus.DELIVERED.value))
    rest = await _claim(runtime, 100)

    assert [delivery.entity_id for delivery in first] == ["5000", "5001"]
    assert while_first_in_flight == []  # leased rows hold back what was published after them
    assert [delivery.entity_id for delivery in rest] == ["5002", "5003", "5004", "5005"]  # row 6 holds 7-9 back


async def _piled_up_backlog(runtime: Runtime, boots: list[dict[str, object]]) -> None:
    await partition_by_day(runtime.database, BACKLOG_DAYS)
    subscription_id = await _subscribe(runtime, Via.WEBHOOK, "orders")
    published = await runtime.publisher.publish(boots[:1])
    await pile_up_pending(runtime.database, subscription_id, published[0], BACKLOG_DAYS, BACKLOG_PER_DAY)


async def _plan_sent(runtime: Runtime, prefix: str | tuple[str, ...]) -> str:
    """The plan of the first statement starting with `prefix` (or one of them) that a claim sends."""
    with sent_statements(runtime.database, prefix) as sent:
        assert len(await _claim(runtime, 3)) == 3
    async with runtime.database.reading() as connection:
        return await plan_of(connection, *sent[0])


async def test_a_claim_reads_due_deliveries_in_order_from_the_due_index_without_sorting_them(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _piled_up_backlog(runtime, boots)

    plan = await _plan_sent(runtime, "SELECT deliveries.id, deliveries.subscription_id")

    # Sorting took every row due at the same time (1,000 to a batch), and without statistics every due row.
    assert DUE_INDEX.search(plan), plan
    assert not SORT.search(plan), plan


async def test_a_claim_finds_the_deliveries_it_chose_by_primary_key_not_by_walking_the_due_index(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _piled_up_backlog(runtime, boots)

    # On PostgreSQL the lease's UPDATE is in a WITH that reads the payloads too.
    plan = await _plan_sent(runtime, ("UPDATE deliveries", "WITH leased AS"))

    # Every pending row is in the due index: answering the still-pending check from it walked the whole backlog.
    assert PRIMARY_KEY.search(plan), plan
    assert not DUE_INDEX.search(plan), plan


async def test_a_claim_that_leaves_out_every_enabled_subscription_scans_no_due_rows(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    saturated = await _subscribe(runtime, Via.WEBHOOK, "saturated")
    disabled = await _subscribe(runtime, Via.WEBHOOK, "disabled")
    await runtime.subscription_store.set_enabled(disabled, False, utcnow(), "test")
    await runtime.publisher.publish(boots)

    with sent_statements(runtime.database, "SELECT deliveries.id, deliveries.subscription_id") as scans:
        claimed = await _claim(runtime, 100, excluded=(saturated,))

    assert claimed == []
    # Leaving the saturated one out, the scan would walk past its whole due backlog to find nothing.
    assert scans == []


async def test_a_claim_plans_its_statements_for_any_due_time_on_postgresql_inside_its_transaction_only(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _subscribe(runtime, Via.WEBHOOK, "hooks")
    await runtime.publisher.publish(boots)

    with sent_statements(runtime.database, "SET LOCAL plan_cache_mode = force_generic_plan") as settings:
        assert len(await _claim(runtime, 3)) == 3

    # Planned for the bound time, the first scans on a connection sorted every due row when statistics lagged.
    if runtime.database.dialect.name != "postgresql":
        assert settings == []
        return
    assert len(settings) == 1
    async with runtime.database.reading() as connection:
        assert (await connection.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "auto"


async def test_a_claim_s_generic_plans_are_made_again_once_the_time_since_the_connection_s_first_claim_doubles(
    runtime: Runtime, boots: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(postgresql, "PlanAge", lambda: PlanAge(lambda: clock[0]))
    await _subscribe(runtime, Via.WEBHOOK, "hooks")
    await runtime.publisher.publish(boots)

    with sent_statements(runtime.database, "DISCARD PLANS") as young:
        assert len(await _claim(runtime, 1)) == 1
        clock[0] = FIRST_REPLAN_S / 2
        assert len(await _claim(runtime, 1)) == 1
    clock[0] = FIRST_REPLAN_S * 4
    with sent_statements(runtime.database, "DISCARD PLANS") as aged:
        claimed = [len(await _claim(runtime, 1)) for _ in range(4)]

    assert claimed == [1, 1, 1, 1]
    assert young == []
    if runtime.database.dialect.name != "postgresql":
        # SQLite plans a statement when it is prepared, from the tables as they are.
        assert aged == []
        return
    # Generic plans are kept until an ANALYZE: made in a partition's first claims they scanned it whole after.
    assert 1 <= len(aged) <= 4


async def test_asking_when_the_first_delivery_falls_due_is_one_round_trip_on_postgresql_without_a_transaction_round_it(
    runtime: Runtime, boots: list[dict[str, object]]
) -> None:
    await _subscribe(runtime, Via.WEBHOOK, "hooks")
    await runtime.publisher.publish(boots)
    if runtime.notifier is not None:
        # The publish's NOTIFY goes out first, so that the notifier's own connection is not among those watched.
        await runtime.notifier.flush()

    with driver_queries(runtime.database) as asked:
        assert await runtime.delivery_store.next_due_at() is not None
    with driver_queries(runtime.database) as claimed:
        assert len(await _claim(runtime, 3)) == 3

    # An idle worker asks after most wake-ups: BEGIN and ROLLBACK were two of the read's three round trips.
    assert asked == []
    if runtime.database.dialect.name == "postgresql":
        # The connection went back to the pool in its usual mode: the next checkout's claim is a transaction (its
        # BEGIN may name the default isolation level SQLAlchemy restored).
        assert claimed[0].startswith("BEGIN")
        assert claimed[-1] == "COMMIT;"
