"""SQLite's WAL checkpoints, taken from a thread of their own so that no committing writer ever runs one.

A WAL auto-checkpoint ran inside the commit that crossed ~1,000 pages, copying and fsyncing the database
file while every writer waited; so the pooled connections never checkpoint, and `WalCheckpointer` does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from chargewire.store.dialects.engine import DATABASE_WAIT_S

logger = logging.getLogger(__name__)

# How often the checkpointer copies the WAL back: SQLite's own auto-checkpoint (1,000 pages) came about three
# times a second at 500 events/s. While fewer than _BUSY_FRAMES_PER_S pages are written (~75 events/s of `serve`),
# once a second: each round copies the pages written since, and a hot page written four times a second was copied
# (and the file synced) four times; at 50 events/s the checkpointer's 2.7 page writes per event became ~1.
_CHECKPOINT_INTERVAL_S = 0.25
_QUIET_INTERVAL_S = 1.0
_BUSY_FRAMES_PER_S = 1_000
# A writer starts the WAL over only when its BEGIN finds every frame copied back, and a PASSIVE checkpoint copies
# only the frames there were when it began: at 200 events/s a commit lands during each one (its two fsyncs take
# milliseconds), so the WAL never started over, grew ~9 MB a second, and a TRUNCATE at 64 MB held every writer up
# for 45-80 ms every ~12 s (the p99 of a 10 s measure when it fell inside it). So once the WAL holds
# _RESTART_FRAMES, RESTART copies the few frames left and waits for readers under the write lock, after which the
# next writer starts the WAL over in place (below `journal_size_limit`, so the file is not cut). At 1,000 pages
# (SQLite's own auto-checkpoint size) that came twice a second at 2,000 events/s and held the writer 0.5-0.9 s of
# every 10; at 8,000 (a 32 MiB WAL) about once in 10 s. It waits for writers at most _LOCKED_BUSY_TIMEOUT_MS and
# gives up rather than stall them; the next round tries again. Nothing here opens the database's files itself:
# closing any descriptor of them drops every POSIX lock this process holds on them, after which another process
# closing its connection believes itself the last, checkpoints and deletes the WAL under this process's
# connections (a malformed database).
_RESTART_FRAMES = 8_000
# Past this size (readers kept even RESTART from finishing), TRUNCATE puts the file back to zero bytes.
_TRUNCATE_WAL_BYTES = 64 * 2**20
_LOCKED_BUSY_TIMEOUT_MS = 20


class WalCheckpointer:
    """Checkpoints one SQLite file's WAL from a thread of its own, so no committing writer ever does.

    PASSIVE four times a second while writers are busy, once a second otherwise: it copies what no reader still
    needs and waits for nobody. Once the WAL holds `restart_frames`, RESTART lets the next writer start it over;
    when readers kept that from happening and the file grew past `truncate_wal_bytes`, TRUNCATE empties it. Both
    give way after a few milliseconds if writers are busy, and try again at the next round.
    """

    def __init__(
        self, path: Path, *, restart_frames: int = _RESTART_FRAMES, truncate_wal_bytes: int = _TRUNCATE_WAL_BYTES
    ) -> None:
        self._path = path
        self._restart_frames = restart_frames
        self._truncate_wal_bytes = truncate_wal_bytes
        self._wal = path.with_name(path.name + "-wal")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpointer:{path.name}", daemon=True)
        self.checkpoints = 0
        self.restarts = 0
        self.truncations = 0

    def start(self) -> None:
        """Start checkpointing in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (blocking: call it from a worker thread in async code)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=DATABASE_WAIT_S, isolation_level=None)
        pace = CheckpointPace(time.monotonic())
        try:
            while not self._stop.wait(pace.interval_s):
                size = self._wal_size()
                if size == 0:
                    continue
                passive = self._checkpoint(connection, "PASSIVE")
                pace.checkpointed(passive, time.monotonic())
                if size >= self._truncate_wal_bytes:
                    self.truncations += self._locked(connection, "TRUNCATE")
                elif passive is not None and passive.log_frames >= self._restart_frames:
                    self.restarts += self._locked(connection, "RESTART")
        finally:
            connection.close()

    def _locked(self, connection: sqlite3.Connection, mode: str) -> bool:
        """Checkpoint in `mode` (RESTART or TRUNCATE), which holds the write lock for the frames committed since and
        for the readers; whether it finished."""
        checkpoint = self._checkpoint(connection, mode, _LOCKED_BUSY_TIMEOUT_MS)
        return checkpoint is not None and checkpoint.complete

    def _checkpoint(self, connection: sqlite3.Connection, mode: str, busy_timeout_ms: int = 0) -> Checkpoint | None:
        """Run one checkpoint; what it found, or None when it did not run."""
        try:
            connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            busy, log_frames, copied = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as error:
            # Another process's checkpoint or a long writer: the next round catches up.
            logger.debug("WAL checkpoint (%s) of %s did not run: %s", mode, self._path, error)
            return None
        self.checkpoints += 1
        return Checkpoint(busy == 0 and log_frames == copied, log_frames)

    def _wal_size(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint found: whether it copied the whole WAL back, and how many pages the WAL held."""

    complete: bool
    log_frames: int


class CheckpointPace:
    """How long the checkpointer waits: the quick interval while pages are written faster than
    `_BUSY_FRAMES_PER_S`, the quiet one otherwise (by the pages the WAL gained between two checkpoints)."""

    def __init__(self, now: float) -> None:
        self.interval_s = _CHECKPOINT_INTERVAL_S
        self._last = Checkpoint(complete=False, log_frames=0)
        self._last_at = now

    def checkpointed(self, checkpoint: Checkpoint | None, now: float) -> None:
        """Set the next wait from what `checkpoint` found at monotonic time `now` (None: it did not run; stay
        quick to catch up)."""
        if checkpoint is None:
            self.interval_s = _CHECKPOINT_INTERVAL_S
            return
        written = _written_since(self._last, checkpoint)
        busy = written >= _BUSY_FRAMES_PER_S * max(now - self._last_at, 1e-3)
        self.interval_s = _CHECKPOINT_INTERVAL_S if busy else _QUIET_INTERVAL_S
        self._last, self._last_at = checkpoint, now


def _written_since(last: Checkpoint, now: Checkpoint) -> int:
    """Pages written between two checkpoints, or more (never fewer): a writer starts the WAL over after one that
    copied it all, and the count starts again from zero."""
    if last.complete and now.log_frames != last.log_frames:
        return now.log_frames  # started over (or, when a reader kept it from that, grown: counted whole)
    if now.log_frames >= last.log_frames:
        return now.log_frames - last.log_frames
    return now.log_frames  # started over after another process's checkpoint
