"""SQLite's WAL checkpoints, taken from a thread of their own so that no committing writer ever runs one.

A WAL auto-checkpoint ran inside the commit that crossed ~1,000 pages, copying and fsyncing the database
file while every writer waited; so the pooled connections never checkpoint, and `WalCheckpointer` does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from chargewire.store.dialects.engine import DATABASE_WAIT_S

logger = logging.getLogger(__name__)

# How often the checkpointer copies the WAL back: SQLite's own auto-checkpoint (1,000 pages) came about three
# times a second at 500 events/s.
_CHECKPOINT_INTERVAL_S = 0.25
# Past this size (readers kept PASSIVE checkpoints from reaching the end, so no writer could start the WAL over),
# TRUNCATE puts the file back to zero bytes; it waits for writers at most _TRUNCATE_BUSY_TIMEOUT_MS and gives up
# rather than stall them. Below it, none: each time a writer starts the WAL over, the connections'
# `journal_size_limit` (`sqlite_engine`) cuts the file back, with no lock taken; a TRUNCATE once a minute held
# every writer up for 86-166 ms at 2,000 events/s.
_TRUNCATE_WAL_BYTES = 64 * 2**20
_TRUNCATE_BUSY_TIMEOUT_MS = 20


class WalCheckpointer:
    """Checkpoints one SQLite file's WAL from a thread of its own, so no committing writer ever does.

    PASSIVE four times a second: it copies what no reader still needs and waits for nobody. When readers kept
    it from finishing and the WAL grew past `truncate_wal_bytes`, TRUNCATE empties the file; it gives way after a
    few milliseconds if writers are busy, and tries again at the next round.
    """

    def __init__(self, path: Path, *, truncate_wal_bytes: int = _TRUNCATE_WAL_BYTES) -> None:
        self._path = path
        self._truncate_wal_bytes = truncate_wal_bytes
        self._wal = path.with_name(path.name + "-wal")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpointer:{path.name}", daemon=True)
        self.checkpoints = 0
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
        try:
            while not self._stop.wait(_CHECKPOINT_INTERVAL_S):
                size = self._wal_size()
                if size == 0:
                    continue
                self._checkpoint(connection, "PASSIVE")
                if size >= self._truncate_wal_bytes and self._checkpoint(
                    connection, "TRUNCATE", _TRUNCATE_BUSY_TIMEOUT_MS
                ):
                    self.truncations += 1
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection, mode: str, busy_timeout_ms: int = 0) -> bool:
        """Run one checkpoint; True when it completed (nothing left in the WAL for it to copy)."""
        try:
            connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            busy, _log_frames, _copied = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as error:
            # Another process's checkpoint or a long writer: the next round catches up.
            logger.debug("WAL checkpoint (%s) of %s did not run: %s", mode, self._path, error)
            return False
        self.checkpoints += 1
        return bool(busy == 0)

    def _wal_size(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0
