"""The processes a delivery benchmark runs: a database per backend, `chargewire worker`s, an RSS sampler."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psutil

from bench.common import process_tree, server_env
from chargewire.devtools.postgres import PostgresCluster, throwaway_cluster
from tests.support.processes import CHARGEWIRE, stop_process


class Backend:
    """Fresh databases on one backend; for PostgreSQL one throwaway cluster serves every phase."""

    def __init__(self, name: str, root: Path, cluster: PostgresCluster | None) -> None:
        self.name = name
        self.root = root
        self.cluster = cluster

    def fresh(self, phase: str) -> tuple[str, Path]:
        """A new empty database for `phase`, and a folder for its processes' files."""
        workdir = self.root / phase
        workdir.mkdir(parents=True)
        if self.cluster is None:
            return f"sqlite+aiosqlite:///{workdir / 'bench.db'}", workdir
        return self.cluster.create_database(phase.replace("-", "_")), workdir

    def database_pids(self) -> list[int]:
        """The PostgreSQL postmaster (its backends are its children); none for SQLite, which runs in-process."""
        if self.cluster is None:
            return []
        with contextlib.suppress(OSError, ValueError):
            return [int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])]
        return []


@contextlib.contextmanager
def open_backend(name: str) -> Iterator[Backend]:
    root = Path(tempfile.mkdtemp(prefix=f"chargewire-bench-webhook-{name}-"))
    try:
        if name == "sqlite":
            yield Backend(name, root, None)
        else:
            with throwaway_cluster() as cluster:
                yield Backend(name, root, cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_workers(
    count: int, database_url: str, workdir: Path, settings: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes, logging to files in `workdir`; stopped with SIGTERM when the block ends."""
    env = {**os.environ, **server_env(database_url, workdir, settings)}
    logs: list[TextIO] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for number in range(count):
            log: TextIO = (workdir / f"worker-{number}.log").open("w")
            logs.append(log)
            processes.append(subprocess.Popen([CHARGEWIRE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT))
        yield processes
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in processes:
            stop_process(process)
        for log in logs:
            log.close()


@dataclass
class RssSampler:
    """Samples the RSS of process groups (children included) in a thread; keeps each group's peak."""

    groups: dict[str, list[int]]
    interval_s: float = 0.2
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pids in list(self.groups.items()):
                rss = 0
                for pid in pids:
                    for process in process_tree(pid):
                        with contextlib.suppress(psutil.Error):
                            rss += process.memory_info().rss
                self.peaks[name] = max(self.peaks.get(name, 0), rss)
            self._stop.wait(self.interval_s)

    def peaks_mb(self) -> dict[str, float]:
        return {name: round(peak / 2**20, 1) for name, peak in self.peaks.items()}
