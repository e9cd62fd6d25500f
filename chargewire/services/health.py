"""Health: is this process ready to serve (`/readyz`), and how are the workers of the deployment doing.

Readiness checks, each answered within `CHECK_TIMEOUT_S` however the database behaves:
- database: a row written and deleted in one committed transaction (reachable and taking writes);
- migrations: the schema is at the revision this chargewire needs;
- delivery: every loop of this process's worker is running (none retrying after a fault), when it has one.

Workers: every worker process stores a heartbeat every couple of seconds (`dispatch.heartbeat`); one whose
last heartbeat is older than `STALE_AFTER_S` and that did not say it stopped is stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.store.database import Database
from chargewire.store.schema_revision import current_revision, head_revision
from chargewire.store.worker_store import WorkerHeartbeat, WorkerStore

CHECK_TIMEOUT_S = 3.0
STALE_AFTER_S = 10.0
# Workers that stopped or went silent are shown for this long, then forgotten.
_SHOWN_FOR = timedelta(hours=1)

LoopStates = Callable[[], Mapping[str, str] | None]


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check's result; `detail` says what failed."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the process is ready, and each check behind the answer."""

    checks: list[Check]

    @property
    def ready(self) -> bool:
        """Every check passed."""
        return all(check.ok for check in self.checks)


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A worker's last heartbeat and what it means now."""

    heartbeat: WorkerHeartbeat
    state: str  # alive, stale or stopped
    age_s: float  # since its last heartbeat


@dataclass(frozen=True, slots=True)
class Workers:
    """The deployment's workers and how long the longest-waiting due delivery has waited."""

    workers: list[WorkerView]
    oldest_due_age_s: float | None

    def count(self, state: str) -> int:
        """How many workers are in `state`."""
        return sum(1 for worker in self.workers if worker.state == state)


class HealthService:
    """Answers readiness and describes the workers."""

    def __init__(self, database: Database, workers: WorkerStore, loop_states: LoopStates = lambda: None) -> None:
        self._database = database
        self._workers = workers
        self._loop_states = loop_states

    async def readiness(self) -> Readiness:
        """Run every check at once, each bounded by `CHECK_TIMEOUT_S`."""
        checks = await asyncio.gather(
            _bounded("database", self._check_database()),
            _bounded("migrations", self._check_migrations()),
            _bounded("delivery", self._check_delivery()),
        )
        return Readiness(list(checks))

    async def workers(self) -> Workers:
        """Every worker seen lately, with its state, and the age of the oldest due delivery."""
        now = utcnow()
        heartbeats = await self._workers.recent_workers(now - _SHOWN_FOR)
        oldest = await self._workers.oldest_due_at(now)
        return Workers(
            workers=[_view(heartbeat, now) for heartbeat in heartbeats],
            oldest_due_age_s=(now - oldest).total_seconds() if oldest is not None else None,
        )

    async def _check_database(self) -> str:
        await self._workers.probe_write(utcnow())
        return "reachable and writable"

    async def _check_migrations(self) -> str:
        current, head = await current_revision(self._database), head_revision()
        if current != head:
            raise _Failed(f"schema at revision {current or 'none'}, this chargewire needs {head}")
        return f"at revision {head}"

    async def _check_delivery(self) -> str:
        states = self._loop_states()
        if states is None:
            return "no worker in this process"
        trouble = {name: state for name, state in states.items() if state != "running"}
        if trouble:
            raise _Failed(", ".join(f"{name} {state}" for name, state in trouble.items()))
        return "all loops running"


class _Failed(Exception):
    """A check found what it checks not in order; the message says how."""


def _view(heartbeat: WorkerHeartbeat, now: datetime) -> WorkerView:
    age_s = max(0.0, (now - heartbeat.heartbeat_at).total_seconds())
    if heartbeat.stopped_at is not None:
        return WorkerView(heartbeat, "stopped", age_s)
    return WorkerView(heartbeat, "stale" if age_s > STALE_AFTER_S else "alive", age_s)


async def _bounded(name: str, check: Awaitable[str]) -> Check:
    """Run one check within `CHECK_TIMEOUT_S`; a check still waiting then (on a locked SQLite file, in the
    driver's thread) is abandoned rather than waited for."""
    task = asyncio.ensure_future(check)
    done, _ = await asyncio.wait([task], timeout=CHECK_TIMEOUT_S)
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        return Check(name, False, f"no answer within {CHECK_TIMEOUT_S:.0f} s")
    error = task.exception()
    if error is None:
        return Check(name, True, task.result())
    return Check(name, False, str(error) if isinstance(error, _Failed) else f"{type(error).__name__}: {error}")


def _retrieve(task: asyncio.Future[str]) -> None:
    if not task.cancelled():
        task.exception()
