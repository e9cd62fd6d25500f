"""The invariant checker: what a run's evidence must show, and the figures of each fault.

Every accepted event (answered 202) has a delivery row for every matching subscription, and each of those
ends delivered (and received) or visibly failed (status `failed` with its error); none is still pending after
the retry schedule, none holds a lease. A delivery reaches its receiver more than once only where a fault cut
a worker off after it sent and before it recorded (a kill, a database or broker outage), and then no more
than what that worker had in flight (such a duplicate is owed to that fault until its lease has run out,
whichever phase it arrives in). No process dies by itself; every process stops cleanly when asked. The API
answers every publish with 202, or 503 while its database is out.

Events and duplicates are counted in the phase they happened in: a phase runs from a fault's injection to the
next one's. Recovery is the time from a fault's clearing to the first successful receipt, on a subscription
the fault reached, of an event published after the clearing; "resumed" the same for any event, backlog
included.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.chaos.faults import Affects
from tests.chaos.processes import TUNING, Exit
from tests.chaos.publisher import Publish
from tests.chaos.receivers import Receipt
from tests.chaos.records import DeliveryRow

ACCEPTABLE_PUBLISH_ANSWERS = frozenset({202, 503})
RECOVERY_TARGET_S = 10.0
# How long after a fault cleared the claims it cut off can still be re-sent: the lease, and a margin.
_RESEND_S = float(TUNING["CHARGEWIRE_WORKER_LEASE_S"]) + 5.0
# Where each kind of fault shows its recovery: the labels of the subscriptions it reaches. A fault that reaches
# every one shows on a webhook and on the topic: a Kafka stream leased to a worker the fault cut off waits for its
# own recovery, which a webhook's does not show.
RECOVERY_WATCH = {Affects.ALL: ("steady", "kafka"), Affects.FAULTY_WEBHOOK: ("faulty",), Affects.KAFKA: ("kafka",)}


@dataclass(frozen=True)
class Phase:
    """A fault's stretch of the run: injected at `start`, cleared at `cleared` (None: no fault), until `end`."""

    name: str
    affects: Affects
    start: float
    cleared: float | None
    end: float
    duplicate_budget: int

    def holds(self, at: float) -> bool:
        """Whether a moment falls in this phase."""
        return self.start <= at < self.end


@dataclass
class Evidence:
    """What a run left behind, gathered after it drained and stopped."""

    subscriptions: dict[str, str]  # label -> subscription id
    accepted: dict[str, float]  # event id -> when its publish was sent
    publishes: list[Publish]
    rows: list[DeliveryRow]
    receipts: list[Receipt]  # webhooks and Kafka records, `path` holding the subscription label
    casualties: list[tuple[float, Exit]]  # processes that died by themselves, and when that was noticed
    stops: list[Exit]


@dataclass
class PhaseFigures:
    """One row of the report."""

    fault: str
    accepted: int = 0
    deliveries: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    missing: int = 0
    lost: int = 0
    duplicates: int = 0
    recovery_s: float | None = None
    resumed_s: float | None = None
    quiet_s: float | None = None  # from the clearing to the next fault: a longer recovery ran into that one
    publish_answers: dict[str, int] = field(default_factory=dict)
    slowest_publish_s: float = 0.0
    died: list[str] = field(default_factory=list)


def check(evidence: Evidence, phases: list[Phase]) -> tuple[list[PhaseFigures], list[str]]:
    """Each phase's figures and every broken invariant, named."""
    figures = {phase.name: PhaseFigures(phase.name) for phase in phases}
    label_of = {subscription_id: label for label, subscription_id in evidence.subscriptions.items()}
    published_at = {row.id: evidence.accepted.get(row.event_id, 0.0) for row in evidence.rows}
    successes = [receipt for receipt in evidence.receipts if receipt.succeeded]
    received = {receipt.delivery_id for receipt in successes}
    violations = _count_events(evidence, phases, figures, label_of, received)
    violations += _count_duplicates(successes, phases, figures)
    violations += _count_publishes(evidence.publishes, phases, figures)
    violations += _count_exits(evidence, phases, figures)
    for phase in phases:
        labels = RECOVERY_WATCH[phase.affects]
        watched = [[receipt for receipt in successes if receipt.path == label] for label in labels]
        recovery = _slowest(_recovery(phase, receipts, published_at) for receipts in watched)
        figures[phase.name].recovery_s = recovery
        figures[phase.name].resumed_s = _slowest(_recovery(phase, receipts, None) for receipts in watched)
        if phase.cleared is not None and phase.end != float("inf"):
            figures[phase.name].quiet_s = round(phase.end - phase.cleared, 1)
        if phase.cleared is not None and recovery is None:
            violations.append(f"{phase.name}: no event published after the fault cleared was delivered")
    return list(figures.values()), violations


def _count_events(
    evidence: Evidence,
    phases: list[Phase],
    figures: dict[str, PhaseFigures],
    label_of: dict[str, str],
    received: set[str],
) -> list[str]:
    rows_by_event: dict[str, list[DeliveryRow]] = defaultdict(list)
    for row in evidence.rows:
        rows_by_event[row.event_id].append(row)
    problems: Counter[str] = Counter()
    for event_id, at in evidence.accepted.items():
        figure = figures[_phase_of(phases, at).name]
        rows = [row for row in rows_by_event.get(event_id, []) if row.subscription_id in label_of]
        figure.accepted += 1
        figure.deliveries += len(rows)
        figure.missing += len(evidence.subscriptions) - len(rows)
        for label in set(evidence.subscriptions) - {label_of[row.subscription_id] for row in rows}:
            problems[f"accepted events without a delivery row for the {label} subscription"] += 1
        for delivery in rows:
            figure.delivered += delivery.status == "delivered"
            figure.failed += delivery.status == "failed"
            figure.pending += delivery.status == "pending"
            figure.lost += delivery.status == "delivered" and delivery.id not in received
            problems["failed without an error"] += delivery.status == "failed" and not delivery.last_error
            problems["pending with a lease held"] += delivery.status == "pending" and bool(delivery.lease_owner)
    for figure in figures.values():
        problems[f"{figure.fault}: deliveries still pending after the retry schedule"] += figure.pending
        problems[f"{figure.fault}: delivered per the database but never received"] += figure.lost
    return [f"{name} ({count})" for name, count in problems.items() if count]


def _count_duplicates(successes: list[Receipt], phases: list[Phase], figures: dict[str, PhaseFigures]) -> list[str]:
    seen: set[str] = set()
    for receipt in sorted(successes, key=lambda receipt: receipt.at):
        if receipt.delivery_id in seen:
            figures[_cause_of(phases, receipt.at).name].duplicates += 1
        seen.add(receipt.delivery_id)
    return [
        f"{phase.name}: {figures[phase.name].duplicates} duplicates, more than the {phase.duplicate_budget} "
        "a worker cut off mid-flight can cause"
        for phase in phases
        if figures[phase.name].duplicates > phase.duplicate_budget
    ]


def _count_publishes(publishes: list[Publish], phases: list[Phase], figures: dict[str, PhaseFigures]) -> list[str]:
    bad: Counter[str] = Counter()
    for publish in publishes:
        phase = _phase_of(phases, publish.at)
        figure = figures[phase.name]
        answer = str(publish.status or "no answer")
        figure.publish_answers[answer] = figure.publish_answers.get(answer, 0) + 1
        figure.slowest_publish_s = round(max(figure.slowest_publish_s, publish.latency_s), 2)
        if publish.status not in ACCEPTABLE_PUBLISH_ANSWERS:
            bad[f"{phase.name}: publishes answered {answer}"] += 1
    return [f"{name} ({count})" for name, count in bad.items()]


def _count_exits(evidence: Evidence, phases: list[Phase], figures: dict[str, PhaseFigures]) -> list[str]:
    violations = []
    for at, casualty in evidence.casualties:
        phase = _phase_of(phases, at)
        figures[phase.name].died.append(f"{casualty.name} ({casualty.returncode})")
        violations.append(f"{phase.name}: {casualty.name} died by itself with exit code {casualty.returncode}")
    violations += [
        f"{stop.name} did not stop cleanly on SIGTERM: exit code {stop.returncode} after {stop.stop_s}s"
        for stop in evidence.stops
        if stop.returncode != 0
    ]
    return violations


def _recovery(phase: Phase, watched: Iterable[Receipt], published_at: dict[str, float] | None) -> float | None:
    """Seconds from the clearing to the first success of an event published after it (of any event when
    `published_at` is None: how soon sending resumed at all, backlog included)."""
    if phase.cleared is None:
        return None
    cleared = phase.cleared
    after = [
        receipt.at
        for receipt in watched
        if receipt.at >= cleared and (published_at is None or published_at.get(receipt.delivery_id, 0.0) >= cleared)
    ]
    return round(min(after) - cleared, 2) if after else None


def _slowest(recoveries: Iterable[float | None]) -> float | None:
    """The longest of the watched subscriptions' recoveries; None when one of them never recovered."""
    times = list(recoveries)
    known = [seconds for seconds in times if seconds is not None]
    return max(known) if known and len(known) == len(times) else None


def _cause_of(phases: list[Phase], at: float) -> Phase:
    """The phase a duplicate arriving at `at` is owed to: the last fault that cut workers off, while its
    claims may still come back (a lease after it cleared, and a margin), or else the phase holding `at`."""
    cutting = [
        phase
        for phase in phases
        if phase.duplicate_budget and phase.cleared is not None and phase.start <= at <= phase.cleared + _RESEND_S
    ]
    return cutting[-1] if cutting else _phase_of(phases, at)


def _phase_of(phases: list[Phase], at: float) -> Phase:
    """The phase holding a moment; moments past the last phase (the drain) belong to the last one."""
    return next((phase for phase in phases if phase.holds(at)), phases[-1])
