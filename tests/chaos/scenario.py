"""One chaos run on one store: start the stack, publish steadily, inject each fault in turn, drain, check."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from chargewire.devtools.kafka_broker import KafkaBroker
from tests.chaos.faults import FAULTY_PATH, STEADY_PATH, Affects, faults_for
from tests.chaos.invariants import Evidence, Phase, check
from tests.chaos.processes import Exit, Stack, running_stack
from tests.chaos.publisher import EVENT_NAME, SteadyPublisher
from tests.chaos.receivers import receiver_in_thread
from tests.chaos.records import count_unsent, read_deliveries, read_topic
from tests.chaos.report import StoreResult

logger = logging.getLogger(__name__)

BASELINE = "baseline (no fault)"
_WORKERS = {"sqlite": 1, "postgresql": 2}
_MAX_IN_FLIGHT = 256  # CHARGEWIRE_WORKER_MAX_IN_FLIGHT's default: what one worker may have sent, unrecorded
_KAFKA_RESENT = 9 * 100  # batches awaiting acks and recording, of CHARGEWIRE_KAFKA_STREAM_BATCH_SIZE records
# The webhook path where each kind of fault shows that sending resumed, and how long the short run then goes on
# before the next fault (the long run keeps its fixed gaps).
_WATCHED_PATHS = {Affects.ALL: STEADY_PATH, Affects.FAULTY_WEBHOOK: FAULTY_PATH}
_SETTLED_S = 1.0


@dataclass(frozen=True)
class Profile:
    """How long and how hard a run is."""

    name: str
    fault_s: float
    gap_s: float
    warmup_s: float
    rate_per_s: int
    drain_s: float
    short: bool


LONG = Profile("long", fault_s=10, gap_s=10, warmup_s=5, rate_per_s=100, drain_s=90, short=False)
SHORT = Profile("short", fault_s=3, gap_s=3, warmup_s=2, rate_per_s=50, drain_s=60, short=True)


def run_store(store: str, profile: Profile, broker: KafkaBroker, workdir: Path) -> StoreResult:
    """Run every fault of `store` against a fresh stack and check the invariants on what it left."""
    began = time.monotonic()
    topic = f"chaos-{store}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=3)
    with (
        receiver_in_thread() as receiver,
        running_stack(store, workdir, broker, receiver, _WORKERS[store], tmpfs_mb=256) as stack,
    ):
        subscriptions = _subscribe(stack, topic)
        publisher = SteadyPublisher(stack.base_url, stack.token, profile.rate_per_s)
        casualties: list[tuple[float, Exit]] = []
        publisher.start()
        phases = _inject_faults(stack, profile, casualties)
        publisher.stop()
        _drain(stack, profile, casualties)
        stops = stack.stop()
        rows = read_deliveries(stack.env["CHARGEWIRE_DATABASE_URL"])
        labels = {STEADY_PATH: "steady", FAULTY_PATH: "faulty"}
        webhooks = [dataclasses.replace(receipt, path=labels[receipt.path]) for receipt in receiver.receipts]
    kafka = [dataclasses.replace(receipt, path="kafka") for receipt in read_topic(broker, topic)]
    evidence = Evidence(
        subscriptions, publisher.accepted(), publisher.publishes, rows, webhooks + kafka, casualties, stops
    )
    figures, violations = check(evidence, phases)
    return StoreResult(store, profile.name, figures, violations, round(time.monotonic() - began, 1))


def _subscribe(stack: Stack, topic: str) -> dict[str, str]:
    """Three subscriptions to the published event: a healthy webhook, the webhook faults reach, a Kafka topic."""
    bodies = {
        "steady": {"via": "webhook", "webhook": {"callbackUrl": stack.receiver.url(STEADY_PATH)}},
        "faulty": {"via": "webhook", "webhook": {"callbackUrl": stack.receiver.url(FAULTY_PATH)}},
        "kafka": {"via": "kafka", "kafka": {"topic": topic, "brokers": [stack.broker.bootstrap("PLAINTEXT")]}},
    }
    ids = {}
    headers = {"Authorization": f"Bearer {stack.token}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as api:
        for label, body in bodies.items():
            created = api.post("/public-api/notifications/v2.0", json={**body, "notifications": [EVENT_NAME]})
            created.raise_for_status()
            ids[label] = str(created.json()["data"]["id"])
    return ids


def _inject_faults(stack: Stack, profile: Profile, casualties: list[tuple[float, Exit]]) -> list[Phase]:
    """The baseline, then each fault: injected, held, cleared, then a quiet gap; returns the phases."""
    budget = (stack.worker_count + 1) * _MAX_IN_FLIGHT + _KAFKA_RESENT
    marks: list[tuple[str, Affects, float, float | None, int]] = [(BASELINE, Affects.ALL, 0.0, None, 0)]
    _hold(stack, profile.warmup_s, casualties)
    for fault in faults_for(stack.store, profile.short):
        logger.info("%s: injecting %s", stack.store, fault.name)
        started = time.time()
        fault.inject(stack)
        _hold(stack, profile.fault_s if profile.short else max(profile.fault_s, fault.min_hold_s), casualties)
        fault.clear(stack)
        cut_off = fault.affects is not Affects.FAULTY_WEBHOOK
        cleared = time.time()
        marks.append((fault.name, fault.affects, started, cleared, budget if cut_off else 0))
        _quiet_gap(stack, profile, fault.affects, cleared, casualties)
    ends = [mark[2] for mark in marks[1:]] + [float("inf")]
    return [Phase(name, affects, start, cleared, end, allowed) for (name, affects, start, cleared, allowed), end in
            zip(marks, ends, strict=True)]  # fmt: skip


def _quiet_gap(
    stack: Stack, profile: Profile, affects: Affects, cleared: float, casualties: list[tuple[float, Exit]]
) -> None:
    """After a fault cleared: in the short run, until the webhook it reached takes a success again and `_SETTLED_S`
    more, at most `gap_s`; else (and for Kafka, whose records are read after the run) all of `gap_s`."""
    path = _WATCHED_PATHS.get(affects)
    if not profile.short or path is None:
        _hold(stack, profile.gap_s, casualties)
        return
    deadline = time.monotonic() + profile.gap_s

    def resumed() -> bool:
        return any(r.succeeded and r.at >= cleared and r.path == path for r in stack.receiver.receipts)

    if _hold(stack, profile.gap_s, casualties, until=resumed):
        _hold(stack, min(_SETTLED_S, max(0.0, deadline - time.monotonic())), casualties)


def _hold(
    stack: Stack, seconds: float, casualties: list[tuple[float, Exit]], until: Callable[[], bool] | None = None
) -> bool:
    """Wait `seconds`, or until `until()` holds (looked at every 50 ms), noting every process that dies meanwhile;
    whether `until` ended the wait."""
    deadline = time.monotonic() + seconds
    step_s = 0.5 if until is None else 0.05
    while True:
        casualties += [(time.time(), casualty) for casualty in stack.casualties()]
        if until is not None and until():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(step_s, max(0.0, deadline - time.monotonic())))


def _drain(stack: Stack, profile: Profile, casualties: list[tuple[float, Exit]]) -> None:
    """Wait until nothing is left to send, or the drain time is up (the invariants then name what is left)."""
    deadline = time.monotonic() + profile.drain_s
    url = stack.env["CHARGEWIRE_DATABASE_URL"]
    while count_unsent(url) and time.monotonic() < deadline:
        _hold(stack, 1.0, casualties)
    # Receipts of the last recorded attempts may still be on their way back from the receivers.
    _hold(stack, 2.0, casualties)
