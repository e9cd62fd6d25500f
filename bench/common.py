"""What the benchmarks share: a server process on a chosen backend, machine facts, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil

from chargewire.devtools.postgres import PostgresCluster, free_port, throwaway_cluster
from tests.support.processes import cli, running_server

RESULTS_DIR = Path(__file__).parent / "results"
BENCH_SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare figures: CPU, cores, memory, Python."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "python_build": python_build(),
        "os": platform.platform(),
    }


def python_build() -> dict[str, Any]:
    """Which CPython build runs the benchmark, and how fast it runs plain Python: Debian's PGO and LTO build of 3.11
    ran the reference below ~25 % faster than pyenv's default build, yet cut SQLite `serve`'s CPU per event at
    200/s by ~5 % only (docs/benchmarks.md, "The interpreter's build")."""
    return {
        "executable": os.path.realpath(sys.executable),
        # A static interpreter (Debian's, the official images') calls its own functions directly; one linked to
        # libpython3.x.so (pyenv's default) goes through the library's symbol table.
        "libpython_shared": any("libpython" in line for line in _mapped_files()),
        "reference_ms": python_reference_ms(),
    }


def _mapped_files() -> list[str]:
    with contextlib.suppress(OSError):
        return Path("/proc/self/maps").read_text().splitlines()
    return []


def python_reference_ms(rounds: int = 5) -> float:
    """CPU ms of a fixed pure-Python workload (calls, objects, dicts), the best of `rounds`: the interpreter's
    speed on this machine in this run, to compare figures taken on different builds or hosts."""
    best = float("inf")
    for _round in range(rounds):
        started = time.process_time()
        _reference_workload()
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


class _Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def doubled(self) -> int:
        return self.x * 2


def _reference_workload() -> int:
    total = 0
    for i in range(100_000):
        point = _Point(i)
        fields = {"id": i, "values": [i, total]}
        total = (total + point.doubled() + len(fields)) % 1_000_003
    return total


@contextlib.contextmanager
def backend_database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL on `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    cluster: PostgresCluster
    with throwaway_cluster() as cluster:
        yield cluster.create_database("bench")


def server_env(database_url: str, workdir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CHARGEWIRE_* settings of a benchmark's server and workers."""
    return {
        "CHARGEWIRE_DATABASE_URL": database_url,
        "CHARGEWIRE_SECRET_KEY": BENCH_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(workdir),
        "CHARGEWIRE_CONFIG": str(workdir / "absent.toml"),
        "CHARGEWIRE_INGEST_MAX_BATCH": "1000",
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
        # A benchmark is one client driving far past any budget a deployment would set.
        "CHARGEWIRE_API_RATE_LIMIT_PER_MINUTE": "100000000",
        "CHARGEWIRE_INGEST_RATE_LIMIT_PER_MINUTE": "100000000",
        **(overrides or {}),
    }


@contextlib.contextmanager
def bench_server(
    database_url: str, workdir: Path, *serve_args: str, env_overrides: Mapping[str, str] | None = None
) -> Iterator[tuple[str, str, int]]:
    """A migrated database and `chargewire serve` on it; yields (base URL, admin token, server pid)."""
    env = server_env(database_url, workdir, env_overrides)
    cli(env, "db", "upgrade")
    token = json.loads(cli(env, "tokens", "create", "--name", "bench", "--scope", "admin", "--json").stdout)["token"]
    port = free_port()
    with running_server(env, port, *serve_args) as process:
        yield f"http://127.0.0.1:{port}", token, process.pid


async def open_runtime(database_url: str, workdir: Path) -> Any:
    """A `Runtime` of this process on a migrated database, with the benchmarks' settings (`server_env`)."""
    from chargewire.config import Settings
    from chargewire.runtime import Runtime
    from chargewire.store import migrate
    from chargewire.store.database import create_database

    os.environ.update(server_env(database_url, workdir))
    database = create_database(database_url)
    await migrate.upgrade(database)
    await database.aclose()
    return await Runtime.open(Settings())


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty when it is gone)."""
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    return []


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) so far of every process in each group, children included."""
    snapshot: dict[str, dict[int, float]] = {}
    for name, pids in groups.items():
        snapshot[name] = {}
        for pid in pids:
            for process in process_tree(pid):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    snapshot[name][process.pid] = times.user + times.system
    return snapshot


def cpu_share(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], seconds: float
) -> dict[str, float]:
    """Cores used by each group between two snapshots (1.0 = one core busy the whole time)."""
    shares = {}
    for name, processes in after.items():
        used = sum(total - before.get(name, {}).get(pid, 0.0) for pid, total in processes.items())
        shares[name] = round(used / seconds, 2) if seconds > 0 else 0.0
    return shares


# /proc/<pid>/stat counts CPU time in clock ticks (USER_HZ).
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_ticks_from_stat(stat: str) -> int:
    """utime + stime + cutime + cstime of a `/proc/<pid>/stat` line: the process's CPU and its waited-for children's.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself, so the fields are
    counted from the last `)`: the state (field 3) comes first, utime is field 14.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(fields[number - 3]) for number in (14, 15, 16, 17))


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds so far of these processes and all their descendants, exited children included.

    A child that exits between two readings moves its time into its parent's cutime/cstime when it is waited
    for, so the difference of two readings counts it once (PostgreSQL backends come and go this way).
    """
    ticks = 0
    for pid in pids:
        for process in process_tree(pid):
            with contextlib.suppress(OSError):
                ticks += cpu_ticks_from_stat(Path(f"/proc/{process.pid}/stat").read_text())
    return ticks / CLOCK_TICKS_PER_S


def peak_rss_mb(groups: dict[str, list[int]]) -> dict[str, float]:
    """Each group's peak resident memory in MiB: the sum of its processes' high-water marks (Linux `VmHWM`)."""
    peaks = {}
    for name, pids in groups.items():
        kib = 0
        for pid in pids:
            for process in process_tree(pid):
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    kib += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks[name] = round(kib / 1024, 1)
    return peaks


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, ours and anyone else's)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def write_result(name: str, result: dict[str, Any], module: str | None = None) -> Path:
    """Save a result as JSON under bench/results/, stamped with date, machine and command (`bench.<module>`)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stamped = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", f"bench.{module or name}", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "machine": machine(),
        **result,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    print(json.dumps(stamped, indent=2))
    return path


def git_commit(checkout: Path | None = None) -> str:
    """The short hash of the commit checked out here, or in `checkout` ("unknown" outside a git checkout)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
        ).stdout.strip()
    return "unknown"


# The child of a `WakeReference`: echoes each byte; at "e" (or the end of its input) writes the CPU seconds it spent
# since the first byte, and ends.
_ECHO = """
import os, time
started = None
while True:
    byte = os.read(0, 1)
    if byte in (b"", b"e"):
        os.write(1, repr(time.process_time() - (started or time.process_time())).encode())
        break
    started = started or time.process_time()
    os.write(1, byte)
"""


class WakeReference:
    """The host's cost of a wake-up while the block runs: a ping-pong between a thread of this process and a child
    process, one round trip every `pace_s`, as CPU µs per round trip of both (`us_per_round_trip`).

    At chargewire's low rates an event's cost is mostly its wake-ups (an idle vCPU woken, cold caches), and what a
    wake-up costs moves with the host by 2x within minutes while the Python reference, a busy loop, stays put: a
    measure with this beside it says which host it ran on. It costs ~1 % of a core at the default pace.
    """

    def __init__(self, pace_s: float = 0.01) -> None:
        self._pace_s = pace_s
        self._stop = threading.Event()
        self._round_trips = 0
        self._thread_cpu_s = 0.0
        self._result: float | None = None
        self._thread = threading.Thread(target=self._ping, name="wake-reference", daemon=True)
        self._child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WakeReference:
        self._child = subprocess.Popen([sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        to_child, _from_child = self._pipes()
        to_child.write(b"e")
        to_child.flush()
        child_cpu_s = float(self._running_child().communicate(timeout=30)[0] or 0.0)
        if self._round_trips:
            self._result = round((self._thread_cpu_s + child_cpu_s) / self._round_trips * 1e6, 1)

    def us_per_round_trip(self) -> float | None:
        """CPU µs per round trip, both sides; None before the block ends or if no round trip was made."""
        return self._result

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._child is None:
            raise RuntimeError("a wake reference measures inside its `with` block")
        return self._child

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        child = self._running_child()
        if child.stdin is None or child.stdout is None:
            raise RuntimeError("the wake reference's child has no pipes")
        return child.stdin, child.stdout

    def _ping(self) -> None:
        to_child, from_child = (pipe.fileno() for pipe in self._pipes())
        started = time.thread_time()
        while not self._stop.is_set():
            os.write(to_child, b"x")
            os.read(from_child, 1)
            self._round_trips += 1
            time.sleep(self._pace_s)
        self._thread_cpu_s = time.thread_time() - started
