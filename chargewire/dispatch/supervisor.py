"""The supervisor: runs a process's long-running loops, retries them through outages, and stops them all together.

Each loop is `run(stop)`, returning once `stop` is set. When one raises:

- an outage (`store.outage.is_unavailable`: the database locked, down or full, a connection reset) starts a
  fault episode: logged once with its traceback, counted, and the loop started again after a backoff that
  doubles from `first_delay_s` to `max_delay_s`, with jitter so that many workers do not come back in step.
  The loop calls `mark_healthy()` after work that succeeded; that ends the episode, and the recovery is logged.
- `ConfigurationError`, or any other error `give_up_after` times in a row, cannot clear by retrying: the
  supervisor stops every loop and `wait()` raises `TaskFailed`, so the process ends non-zero and whatever
  supervises it starts it again.

A loop that returns before `stop` is set counts as an error too: nothing may stop silently.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chargewire.clock import utcnow
from chargewire.errors import ConfigurationError, TaskFailed
from chargewire.store.outage import is_unavailable
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
GIVE_UP_AFTER = 5


class TaskState(StrEnum):
    """Where a supervised loop is: running, waiting to retry after a fault, stopped, or failed for good."""

    RUNNING = "running"
    RETRYING = "retrying"
    STOPPED = "stopped"
    FAILED = "failed"


class _LoopEnded(RuntimeError):
    """The loop returned although nobody asked it to stop."""


@dataclass
class TaskStatus:
    """One supervised loop's state, its faults so far and the last one."""

    name: str
    state: TaskState = TaskState.RUNNING
    faults: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    episode_faults: int = 0  # faults since it last did work
    episode_started: float = 0.0
    repeats: int = 0  # errors in a row that are not outages


_current: ContextVar[TaskStatus | None] = ContextVar("chargewire_supervised_task", default=None)


def mark_healthy() -> None:
    """Tell the supervisor that the calling loop just did work: a fault episode it was in has ended."""
    status = _current.get()
    if status is None or status.episode_faults == 0:
        return
    logger.warning(
        "%s recovered after %.1f s and %d faults",
        status.name,
        time.monotonic() - status.episode_started,
        status.episode_faults,
    )
    status.state = TaskState.RUNNING
    status.episode_faults = status.repeats = 0


def error_class(error: BaseException) -> str:
    """A short, stable name for an error, for metrics and the worker view."""
    return type(error).__name__


class Supervisor:
    """Runs named loops until `stop` is set; see the module docstring for how faults are handled."""

    def __init__(
        self,
        stop: asyncio.Event,
        *,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        give_up_after: int = GIVE_UP_AFTER,
        rng: random.Random | None = None,
    ) -> None:
        self.stop = stop
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._give_up_after = give_up_after
        self._rng = rng or random.Random()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._statuses: dict[str, TaskStatus] = {}
        self.faults: Counter[tuple[str, str]] = Counter()  # (task, error class) -> faults
        self._failure: TaskFailed | None = None

    def start(self, name: str, loop: Loop) -> None:
        """Run `loop(stop)` under supervision as `name`."""
        status = self._statuses[name] = TaskStatus(name)
        self._tasks[name] = asyncio.create_task(self._supervise(status, loop), name=f"supervised:{name}")

    def statuses(self) -> list[TaskStatus]:
        """Every loop's status, in the order they were started."""
        return list(self._statuses.values())

    @property
    def healthy(self) -> bool:
        """Whether every loop is running (none retrying, stopped or failed)."""
        return all(status.state is TaskState.RUNNING for status in self._statuses.values())

    async def wait(self) -> None:
        """Wait until every loop has ended; raises TaskFailed when one of them failed for good."""
        if self._tasks:
            await asyncio.gather(*self._tasks.values())
        if self._failure is not None:
            raise self._failure

    async def _supervise(self, status: TaskStatus, loop: Loop) -> None:
        _current.set(status)
        while not self.stop.is_set():
            try:
                await loop(self.stop)
                if self.stop.is_set():
                    break
                raise _LoopEnded(f"{status.name} returned although it was not asked to stop")
            except Exception as error:
                if not self._retryable(status, error):
                    self._fail(status, error)
                    return
                await wait_for_any([self.stop], self._delay_s(status.episode_faults))
        status.state = TaskState.STOPPED

    def _retryable(self, status: TaskStatus, error: Exception) -> bool:
        """Count and log a fault; whether the loop may be started again."""
        outage = is_unavailable(error)
        status.faults += 1
        status.last_error, status.last_error_at = f"{error_class(error)}: {error}", utcnow()
        self.faults[(status.name, error_class(error))] += 1
        status.repeats = 0 if outage else status.repeats + 1
        if isinstance(error, ConfigurationError) or status.repeats >= self._give_up_after:
            return False
        if status.episode_faults == 0:
            status.episode_started = time.monotonic()
            kind = "the database is unavailable" if outage else "an unexpected error"
            logger.error("%s stopped by %s; retrying with backoff until it clears", status.name, kind, exc_info=error)
        else:
            logger.debug("%s still failing (%d): %s", status.name, status.episode_faults + 1, status.last_error)
        status.episode_faults += 1
        status.state = TaskState.RETRYING
        return True

    def _fail(self, status: TaskStatus, error: Exception) -> None:
        status.state = TaskState.FAILED
        logger.critical("%s failed and cannot recover; stopping", status.name, exc_info=error)
        if self._failure is None:
            failure = TaskFailed(f"{status.name} failed and cannot recover: {status.last_error}")
            failure.__cause__ = error
            self._failure = failure
        self.stop.set()

    def _delay_s(self, faults: int) -> float:
        """Doubling from the first delay to the cap, then between half and all of it (jitter)."""
        ceiling = min(self._max_delay_s, self._first_delay_s * 2 ** min(faults - 1, 32))
        return float(ceiling * self._rng.uniform(0.5, 1.0))
