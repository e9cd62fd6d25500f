"""The faults a chaos run injects, each one real: a stopped database, a lock held by another process, a full
filesystem, killed workers, misbehaving receivers, a stopped Kafka broker.

A fault is injected, held for a while, then cleared; `affects` names the subscriptions whose deliveries show
when it has cleared (recovery is measured on them).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from chargewire.devtools.postgres import PostgresCluster
from tests.chaos.processes import Stack
from tests.chaos.receivers import Mode

FAULTY_PATH = "/faulty"
STEADY_PATH = "/steady"
_FILLER = "chaos-filler"
# Holds SQLite's write lock from another process, as any other program opening the file could.
_SQLITE_LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(3600)
"""


class Affects(StrEnum):
    """Which subscriptions a fault reaches."""

    ALL = "all"
    FAULTY_WEBHOOK = "faulty webhook"
    KAFKA = "kafka"


class Fault(Protocol):
    """Something that breaks while held: `inject`, then `clear`."""

    name: str
    affects: Affects
    min_hold_s: float

    def inject(self, stack: Stack) -> None:
        """Break it."""

    def clear(self, stack: Stack) -> None:
        """Repair it; returns once it works again."""


@dataclass
class PostgresRestart:
    """PostgreSQL stopped in immediate mode (a crash, to its clients), then started again."""

    name: str = "postgres stopped (immediate) and restarted"
    affects: Affects = Affects.ALL
    min_hold_s: float = 0.0

    def inject(self, stack: Stack) -> None:
        """`pg_ctl stop -m immediate`."""
        _cluster(stack).stop()

    def clear(self, stack: Stack) -> None:
        """`pg_ctl start`, waiting until it accepts connections."""
        _cluster(stack).start()


@dataclass
class SqliteLock:
    """Another process holds SQLite's write lock (`BEGIN IMMEDIATE`) on the database file."""

    name: str = "sqlite write-locked by another process"
    affects: Affects = Affects.ALL
    # Longer than chargewire's 30 s SQLite busy timeout: a shorter lock only makes statements wait, never fail.
    min_hold_s: float = 35.0
    _locker: subprocess.Popen[str] | None = None

    def inject(self, stack: Stack) -> None:
        """Start the locker and wait until it holds the lock."""
        self._locker = subprocess.Popen(
            [sys.executable, "-c", _SQLITE_LOCKER, str(stack.sqlite_path)], stdout=subprocess.PIPE, text=True
        )
        assert self._locker.stdout is not None
        if self._locker.stdout.readline().strip() != "locked":
            raise RuntimeError("the SQLite locker could not take the write lock")

    def clear(self, stack: Stack) -> None:
        """End the locker; its lock goes with it."""
        if self._locker is not None:
            self._locker.kill()
            self._locker.communicate(timeout=10)


@dataclass
class DiskFull:
    """The data directory's filesystem (the run's tmpfs) filled to the last byte, then freed."""

    name: str = "data filesystem full, then freed"
    affects: Affects = Affects.ALL
    min_hold_s: float = 0.0

    def inject(self, stack: Stack) -> None:
        """Write zeros until the filesystem refuses, in ever smaller pieces down to one page."""
        descriptor = os.open(stack.data_dir / _FILLER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for size in (1 << 20, 4096):
                _write_until_full(descriptor, b"\0" * size)
        finally:
            os.close(descriptor)

    def clear(self, stack: Stack) -> None:
        """Remove the filler."""
        Path(stack.data_dir / _FILLER).unlink(missing_ok=True)


@dataclass
class WorkerKill:
    """Every `chargewire worker` SIGKILLed; new ones started when the fault clears."""

    name: str = "workers SIGKILLed, restarted"
    affects: Affects = Affects.ALL
    min_hold_s: float = 0.0

    def inject(self, stack: Stack) -> None:
        """SIGKILL the workers."""
        stack.kill_workers()

    def clear(self, stack: Stack) -> None:
        """Start as many new workers."""
        stack.start_workers()


@dataclass
class ReceiverMisbehaves:
    """One subscription's receiver hangs, resets connections, answers garbage or NUL bytes; the others are fine."""

    mode: Mode
    name: str = ""
    affects: Affects = Affects.FAULTY_WEBHOOK
    min_hold_s: float = 0.0

    def __post_init__(self) -> None:
        self.name = self.name or f"receiver answers: {self.mode}"

    def inject(self, stack: Stack) -> None:
        """Switch the faulty receiver to the mode."""
        stack.receiver.modes[FAULTY_PATH] = self.mode

    def clear(self, stack: Stack) -> None:
        """Make it healthy again."""
        stack.receiver.modes[FAULTY_PATH] = Mode.HEALTHY


@dataclass
class KafkaStop:
    """The Kafka broker stopped, then started again."""

    name: str = "kafka broker stopped and restarted"
    affects: Affects = Affects.KAFKA
    min_hold_s: float = 0.0

    def inject(self, stack: Stack) -> None:
        """Stop the broker process."""
        stack.broker.stop()

    def clear(self, stack: Stack) -> None:
        """Start it, waiting until every listener serves."""
        stack.broker.start()


def _write_until_full(descriptor: int, chunk: bytes) -> None:
    try:
        while True:
            os.write(descriptor, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise


def _cluster(stack: Stack) -> PostgresCluster:
    if stack.cluster is None:
        raise RuntimeError("this fault needs the PostgreSQL store")
    return stack.cluster


def faults_for(store: str, short: bool) -> list[Fault]:
    """The faults of a run on `store`, in order.

    The short run keeps each kind of fault once over the two stores: the database faults of each, a kill on
    each, and the receiver and broker faults split between them.
    """
    if store == "postgresql":
        database: list[Fault] = [PostgresRestart()]
        short_rest: list[Fault] = [ReceiverMisbehaves(Mode.NUL)]
    else:
        database = [SqliteLock(), DiskFull()]
        short_rest = [ReceiverMisbehaves(Mode.RESET), KafkaStop()]
    if short:
        return [*database, WorkerKill(), *short_rest]
    receivers = [ReceiverMisbehaves(mode) for mode in (Mode.HANG, Mode.RESET, Mode.GARBAGE, Mode.NUL)]
    return [*database, WorkerKill(), *receivers, KafkaStop()]
