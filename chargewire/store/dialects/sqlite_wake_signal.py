"""SQLite's direct wake-up signal: a one-byte datagram from the process that committed to each watching process.

SQLite is a single-host database, so every process on a file shares the machine. Each process that watches the
file's commits (`sqlite_wakeups.CommitWatcher`) binds a Unix datagram socket in a directory beside the file
(`<file>-wake/<pid>-<random>`); a process that committed new work (`WakeSignal.fire`, as PostgreSQL's NOTIFY)
sends one byte to every socket there but its own, without blocking. A datagram tells the watcher to look now
instead of at its next poll: the same look, with the same filter (new work, and some due), so the signal changes
when a worker wakes, never whether. Measured at 50 events/s with `serve --no-worker` and one `worker`: the poll
(every 5 ms while busy, 20 ms after a quiet second) found a commit 2.4 ms after it on median (p90 4.8 ms).

The poll stays as the fallback, at a slower pace while the signal works: a sender that cannot signal (an
unwritable directory, an older version) is still found. Faults only ever cost the signal, never a wake:
- a process killed without closing its socket leaves its file behind; a send to it is refused
  (ECONNREFUSED) and the sender removes the file;
- a socket whose queue is full (EAGAIN) has a look pending already;
- a directory that cannot be made, listed or written (read-only, full, not ours, a path too long) leaves that
  process on the poll's pace; said once in the log.

A sender lists the directory only when it changed (a watcher came or went): a commit costs one `stat` of it, not
a listing (open, read, close: 4-5 system calls per publish, with nobody else watching as well).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargewire.store.dialects.base import Announced

logger = logging.getLogger(__name__)

_SIGNAL = b"\x01"
# Linux's limit on a socket's path (sun_path, 108 bytes with its NUL); a longer one is addressed through the
# directory's descriptor (/proc/self/fd/N/name), which the kernel resolves like any path.
_MAX_ADDRESS = 107
_DRAIN_AT_MOST = 1024
# A directory's modification time has the clock's tick (or, on some file systems, a second or two) for grain: a
# watcher that comes within the same grain as a listing leaves the time as it was. So a listing is reused only once
# the directory had not changed for longer than any grain before it was listed.
_SETTLED_NS = 3 * 10**9


def signal_directory(database_file: Path) -> Path:
    """The directory beside `database_file` that holds its watchers' sockets."""
    return database_file.with_name(f"{database_file.name}-wake")


def _own_prefix() -> str:
    # Read at each use: a forked child is a process of its own.
    return f"{os.getpid()}-"


class _Directory:
    """A signal directory, addressed through an open descriptor when its path is too long for a socket's name."""

    def __init__(self, path: Path, descriptor: int | None) -> None:
        self.path = path
        self._descriptor = descriptor

    @classmethod
    def open(cls, path: Path) -> _Directory:
        """Open `path` for addressing sockets in it; raises OSError when it is not there."""
        if len(os.fsencode(path)) + 40 <= _MAX_ADDRESS:
            return cls(path, None)
        return cls(path, os.open(path, os.O_RDONLY | os.O_DIRECTORY))

    def address(self, name: str) -> str:
        """The address of socket `name` in this directory."""
        if self._descriptor is None:
            return str(self.path / name)
        return f"/proc/self/fd/{self._descriptor}/{name}"

    def close(self) -> None:
        """Release the directory's descriptor, if one was opened."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


class SignalSocket:
    """A watcher's socket in the signal directory: readable when some process signalled since the last `drain()`."""

    def __init__(self, directory: _Directory, name: str, sock: socket.socket) -> None:
        self._directory = directory
        self._name = name
        self._socket = sock

    @classmethod
    def bind(cls, database_file: Path) -> SignalSocket | None:
        """A socket bound in `database_file`'s signal directory (made if missing); None, logged, when that fails."""
        path = signal_directory(database_file)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"{_own_prefix()}{secrets.token_hex(4)}"
        try:
            # The owner's alone, as the database file is (0600): no other user signals or plants sockets.
            path.mkdir(mode=0o700, exist_ok=True)
            directory = _Directory.open(path)
        except OSError as error:
            sock.close()
            logger.warning("no wake-up signal beside %s (%s); watching its commits by polling only", path, error)
            return None
        try:
            sock.bind(directory.address(name))
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            directory.close()
            logger.warning("no wake-up signal in %s (%s); watching its commits by polling only", path, error)
            return None
        return cls(directory, name, sock)

    def fileno(self) -> int:
        """The socket's descriptor, for `select`."""
        return self._socket.fileno()

    def drain(self) -> bool:
        """Read every signal waiting; whether there was any."""
        got = False
        for _ in range(_DRAIN_AT_MOST):
            try:
                self._socket.recv(16)
            except BlockingIOError:
                break
            got = True
        return got

    def poke(self) -> None:
        """Signal this socket itself (to end a wait on it early)."""
        try:
            self._socket.sendto(_SIGNAL, self._directory.address(self._name))
        except OSError as error:
            logger.debug("could not poke wake-up socket %s: %s", self._name, error)

    def close(self) -> None:
        """Remove the socket's file and close it: senders stop addressing it."""
        try:
            os.unlink(self._directory.path / self._name)
        except OSError as error:
            logger.debug("could not remove wake-up socket %s: %s", self._name, error)
        self._socket.close()
        self._directory.close()


@dataclass(frozen=True, slots=True)
class _Listing:
    """The other processes' sockets in the directory, and for what they hold: the listing process's socket prefix
    and the directory's inode and modification time (None when the listing came too soon after a change)."""

    holds_for: tuple[str, int, int] | None
    names: tuple[str, ...]


class SignalSender:
    """Sends the wake-up signal to every other process watching a SQLite file (a `WakeSender`)."""

    def __init__(self, database_file: Path) -> None:
        self._path = signal_directory(database_file)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._directory: _Directory | None = None
        self._inode = -1
        self._listing = _Listing(None, ())
        self.listings = 0
        self._failed_before = False

    def request(self, announced: Announced = ()) -> None:
        """Signal every other watching process now (call it after a commit); never blocks, never raises. The
        signal is one byte: a watcher looks for whatever is due, so `announced` is not sent."""
        if self._socket.fileno() < 0:
            return  # closed (`aclose`): the process is stopping
        try:
            opened = self._open()
            if opened is None:
                return  # no process watches yet: the first one to watch makes the directory
            directory, modified_ns = opened
            names = self._others(modified_ns)
        except OSError as error:
            self._failed_once(error)
            return
        for name in names:
            self._send(directory, name)

    def _open(self) -> tuple[_Directory, int] | None:
        """The directory and its modification time, if there is one."""
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(status.st_mode):
            return None  # something else in the way: the watchers say so, and poll
        if self._directory is None or status.st_ino != self._inode:
            # First use, or the directory was made anew: an old descriptor would address the one removed.
            if self._directory is not None:
                self._directory.close()
            self._directory, self._inode = _Directory.open(self._path), status.st_ino
            self._listing = _Listing(None, ())
        return self._directory, status.st_mtime_ns

    def _others(self, modified_ns: int) -> tuple[str, ...]:
        """The other processes' sockets, listed again only if the directory changed since the last listing."""
        own = _own_prefix()
        holds_for = (own, self._inode, modified_ns)
        if holds_for != self._listing.holds_for:
            names = tuple(entry.name for entry in os.scandir(self._path) if not entry.name.startswith(own))
            self.listings += 1
            settled = time.time_ns() - modified_ns > _SETTLED_NS
            self._listing = _Listing(holds_for if settled else None, names)
        return self._listing.names

    async def flush(self) -> None:
        """Nothing to wait for: `request` has sent its signals when it returns."""

    async def aclose(self) -> None:
        """Close the sending socket."""
        self._socket.close()
        if self._directory is not None:
            self._directory.close()

    def _send(self, directory: _Directory, name: str) -> None:
        try:
            self._socket.sendto(_SIGNAL, directory.address(name))
        except BlockingIOError:
            pass  # its queue is full: that process has a look to make already
        except OSError as error:
            if error.errno == errno.ECONNREFUSED:
                # Nobody reads it: its process ended without removing it.
                _remove_quietly(self._path / name)
            elif error.errno != errno.ENOENT:  # removed since the listing: its process stopped
                self._failed_once(error)

    def _failed_once(self, error: OSError) -> None:
        if not self._failed_before:
            self._failed_before = True
            logger.warning(
                "could not signal wake-ups in %s (%s); other processes find the work at their next poll",
                self._path,
                error,
            )


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError as error:
        logger.debug("could not remove stale wake-up socket %s: %s", path, error)
