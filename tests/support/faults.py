"""Faults injected from outside the process under test, for the outage tests and the chaos suite.

Each is a context manager: the fault holds for the length of the block and is undone when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from chargewire.devtools.postgres import PostgresCluster

# Run by another Python process: take the write lock of the file in argv[1], say so, hold it until told.
_HOLD_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.rollback()
connection.close()
"""


@contextlib.contextmanager
def sqlite_write_locked(path: Path) -> Iterator[None]:
    """Hold the write lock of the SQLite file at `path` from another process (BEGIN EXCLUSIVE) during the block."""
    command = [sys.executable, "-c", _HOLD_WRITE_LOCK, str(path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            answer = holder.stdout.readline().strip()
            if answer != "locked":
                raise AssertionError(f"the lock holder did not take the lock (said {answer!r})")
            yield
        finally:
            with contextlib.suppress(BrokenPipeError):
                holder.stdin.write("\n")
                holder.stdin.flush()


@contextlib.asynccontextmanager
async def in_a_thread(fault: contextlib.AbstractContextManager[None]) -> AsyncIterator[None]:
    """`fault` entered and left in a thread, for a test whose service runs on its event loop: taking SQLite's write
    lock waits for a transaction the service has open, which ends only when the loop sends its COMMIT (entered on
    the loop, both waited until the lock holder's 60 s busy timeout ran out); stopping PostgreSQL blocks too."""
    await asyncio.to_thread(fault.__enter__)
    try:
        yield
    finally:
        await asyncio.to_thread(fault.__exit__, None, None, None)


@contextlib.contextmanager
def postgres_down(cluster: PostgresCluster) -> Iterator[None]:
    """Stop the PostgreSQL cluster in immediate mode (as a crash) for the block, then start it again."""
    cluster.stop()
    try:
        yield
    finally:
        cluster.start()


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB mounted at `path` (which it makes) for the block; needs root."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextlib.contextmanager
def disk_full(folder: Path) -> Iterator[None]:
    """Fill the filesystem holding `folder` to the last byte for the block, then free the space."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:  # unbuffered: closing it has nothing left to write
        for size in (65536, 1):  # big writes, then the last bytes one by one
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    try:
        yield
    finally:
        filler.unlink()
