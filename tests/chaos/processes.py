"""The stack under test: a database on a tmpfs the run mounts, `chargewire serve`, `chargewire worker` processes.

Every process writes its log to a file outside the tmpfs, so a full disk does not silence it, and the run can
show why a process died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.devtools.postgres import PostgresCluster, free_port, throwaway_cluster
from tests.chaos.receivers import ChaosReceiver
from tests.support.processes import CHARGEWIRE, migrated_with_admin_token, wait_until_serving

SECRET_KEY = "chaos-secret-key-0123456789-abcdefghijklmnop"
STOP_TIMEOUT_S = 20.0
WORKER_START_TIMEOUT_S = 60.0
# Short enough that a run drains within a minute of its last fault: a killed worker's claims come back after
# 15 s, a delivery is tried 4 times over about 7 s (a Kafka record's retries wait at least the 3 s message
# timeout plus 1 s), and a hung receiver costs 2 s per attempt. The lease is
# longer than a claimed batch can take against a hung receiver (16 at a time, 2 s each): a shorter one lets a
# second worker claim what the first is still sending, and the run would count those duplicates as faults.
TUNING = {
    "CHARGEWIRE_WORKER_LEASE_S": "15",
    "CHARGEWIRE_RETRY_SCHEDULE_S": "1,2,4",
    "CHARGEWIRE_WEBHOOK_TIMEOUT_S": "2",
    "CHARGEWIRE_WEBHOOK_CONNECT_TIMEOUT_S": "1",
    "CHARGEWIRE_KAFKA_MESSAGE_TIMEOUT_S": "3",
    "CHARGEWIRE_KAFKA_CONNECT_TIMEOUT_S": "2",
    "CHARGEWIRE_KAFKA_STREAM_BATCH_SIZE": "100",
    "CHARGEWIRE_API_RATE_LIMIT_PER_MINUTE": "1000000",
    "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
}


@dataclass(frozen=True)
class Exit:
    """A process that ended: which one, its exit code, how long a stop took (None: it died by itself), log tail."""

    name: str
    returncode: int
    stop_s: float | None
    log_tail: str


@dataclass
class Stack:
    """The running processes and what the faults act on."""

    store: str
    env: dict[str, str]
    base_url: str
    token: str
    data_dir: Path
    log_dir: Path
    broker: KafkaBroker
    receiver: ChaosReceiver
    cluster: PostgresCluster | None
    worker_count: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _spawned: int = 0

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file (SQLite store only)."""
        return self.data_dir / "chargewire.db"

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `chargewire ARGS` as the process called `name`, its output in the log folder."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [CHARGEWIRE, *args], env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def start_workers(self) -> None:
        """Start `worker_count` new `chargewire worker` processes; returns once each one is delivering."""
        names = [f"worker-{self._spawned + number}" for number in range(1, self.worker_count + 1)]
        self._spawned += self.worker_count
        for name in names:
            self.spawn(name, "worker")
        for name in names:
            self._wait_until_delivering(name)

    def _wait_until_delivering(self, name: str) -> None:
        """Wait for the worker's "worker ... delivering" line: starting one takes seconds on a busy machine, and
        a fault that strikes before then would test its start-up, not its delivery loop."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while " delivering" not in self.log_tail(name, size=100_000):
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start delivering: {self.log_tail(name)}")
            time.sleep(0.1)

    def kill_workers(self) -> None:
        """SIGKILL every worker process (not `serve`) and forget them."""
        for name in [name for name in self.processes if name.startswith("worker-")]:
            process = self.processes.pop(name)
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def casualties(self) -> list[Exit]:
        """Processes that ended by themselves since the last call (each reported once)."""
        dead = {name: process for name, process in self.processes.items() if process.poll() is not None}
        for name in dead:
            del self.processes[name]
        return [Exit(name, process.returncode, None, self.log_tail(name)) for name, process in dead.items()]

    def stop(self) -> list[Exit]:
        """SIGTERM every process at once; SIGKILL what has not exited after STOP_TIMEOUT_S."""
        started = time.monotonic()
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        exits = []
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, STOP_TIMEOUT_S - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            exits.append(Exit(name, process.returncode, round(time.monotonic() - started, 2), self.log_tail(name)))
        self.processes.clear()
        return exits

    def log_tail(self, name: str, size: int = 2500) -> str:
        """The end of a process's log."""
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-size:]
        return ""


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` at `path` (root only), unmounted when the block ends, failure or not."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "chargewire-chaos", str(path)], check=True)
    try:
        yield path
    finally:
        # Lazy: a process the run could not stop may still hold a file open; the mount goes once it lets go.
        subprocess.run(["umount", "--lazy", str(path)], check=False)


@contextlib.contextmanager
def database(store: str, data_dir: Path) -> Iterator[tuple[str, PostgresCluster | None]]:
    """A database URL on `store`: the SQLite file in `data_dir`, or a PostgreSQL cluster of the run's own."""
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir / 'chargewire.db'}", None
        return
    with throwaway_cluster() as cluster:
        yield cluster.create_database("chaos", durable=True), cluster


@contextlib.contextmanager
def running_stack(
    store: str, workdir: Path, broker: KafkaBroker, receiver: ChaosReceiver, worker_count: int, tmpfs_mb: int
) -> Iterator[Stack]:
    """`serve` (with its own delivery loop) and `worker_count` workers on a fresh database; stopped at the end."""
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with mounted_tmpfs(workdir / "data", tmpfs_mb) as data_dir, database(store, data_dir) as (url, cluster):
        env = {
            "CHARGEWIRE_DATABASE_URL": url,
            "CHARGEWIRE_SECRET_KEY": SECRET_KEY,
            "CHARGEWIRE_DATA_DIR": str(data_dir),
            "CHARGEWIRE_CONFIG": str(workdir / "absent.toml"),
            **TUNING,
        }
        token = migrated_with_admin_token(env, "chaos")
        port = free_port()
        stack = Stack(
            store, env, f"http://127.0.0.1:{port}", token, data_dir, log_dir, broker, receiver, cluster, worker_count
        )
        try:
            serve = stack.spawn("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
            wait_until_serving(stack.base_url, serve, log_dir / "serve.log")
            stack.start_workers()
            yield stack
        finally:
            stack.stop()
