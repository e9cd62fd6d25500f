"""A throwaway PostgreSQL cluster in a temporary folder, for tests and benchmarks.

It uses the server binaries of the Debian package (`/usr/lib/postgresql/<version>/bin`). PostgreSQL refuses
to run as root, so when we are root the cluster belongs to the `postgres` system user and its commands run
through `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_SERVER_BINARY_GLOB = "/usr/lib/postgresql/*/bin"
_UNPRIVILEGED_USER = "postgres"

# For a benchmark that wants to know where the database's time goes: set to a file name, and every throwaway
# cluster loads pg_stat_statements (planning times too) and, when it stops, writes each database's statements
# there as tab-separated lines, costliest first (appending: a bench may run several clusters).
STATEMENTS_ENV = "CHARGEWIRE_BENCH_PG_STATEMENTS"
# Set beside it to a number of milliseconds: auto_explain logs EXPLAIN (ANALYZE, BUFFERS) of every statement
# that ran that long, and the server log is copied next to the statements file (`<file>.<port>.log`).
EXPLAIN_ENV = "CHARGEWIRE_BENCH_PG_EXPLAIN_MS"
# Each database's statements, costliest first, as `write_statements` writes them (under _STATEMENT_HEADINGS).
_STATEMENTS_QUERY = """
    SELECT datname, calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), plans,
        round(total_plan_time::numeric, 1), rows, shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_bytes,
        regexp_replace(query, '\\s+', ' ', 'g')
    FROM pg_stat_statements JOIN pg_database ON pg_database.oid = dbid
    ORDER BY total_exec_time DESC
"""
_STATEMENT_HEADINGS = (
    "database",
    "calls",
    "exec_ms",
    "mean_ms",
    "plans",
    "plan_ms",
    "rows",
    "blocks_hit",
    "blocks_read",
    "blocks_dirtied",
    "wal_bytes",
    "query",
)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the cluster would not start."""


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl, newest version first; PostgresUnavailable when none is installed."""
    for candidate in sorted(glob.glob(_SERVER_BINARY_GLOB), key=_version_key, reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: install the Debian package `postgresql` (make test does this)."
    )


def _version_key(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """A running cluster: connect with `url(database)`."""

    bin_dir: Path
    data_dir: Path
    port: int
    owner: str | None

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """An SQLAlchemy URL for a database of this cluster."""
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def user(self) -> str:
        """The superuser name."""
        return self.owner or pwd.getpwuid(os.getuid()).pw_name

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def start(self) -> None:
        """initdb (first time) and start the server; fast, unsafe settings fit for throwaway data only."""
        if not (self.data_dir / "PG_VERSION").exists():
            result = self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.user, "-E", "UTF8")
            if result.returncode:
                raise PostgresUnavailable(f"initdb failed: {result.stderr[-2000:]}")
        options = (
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB"
        ) + _statistics_options()
        log = self.data_dir / "server.log"
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        if result.returncode:
            tail = log.read_text()[-2000:] if log.exists() else result.stderr
            raise PostgresUnavailable(f"PostgreSQL did not start: {tail}")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server, by default at once as a crash (writing its statement totals first when STATEMENTS_ENV
        asks for them); `mode` "fast" stops it as a restart does, closing each session with a FATAL message."""
        target = os.environ.get(STATEMENTS_ENV)
        if target:
            self.write_statements(Path(target))
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` with psql, unaligned and tab-separated; returns its output, PostgresUnavailable on failure."""
        result = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database, "-AtF", "\t", "-c", sql
        )
        if result.returncode:
            raise PostgresUnavailable(f"psql failed: {result.stderr[-2000:]}")
        return result.stdout

    def write_statements(self, target: Path) -> None:
        """Append pg_stat_statements' totals (costliest first) to `target`, and copy the server log beside it."""
        try:
            self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = self.psql(_STATEMENTS_QUERY)
        except PostgresUnavailable as error:
            logger.warning("no statement totals: %s", error)
            return
        header = "\t".join(_STATEMENT_HEADINGS)
        with target.open("a") as out:
            out.write(f"# cluster on port {self.port}\n{header}\n{rows}")
        log = self.data_dir / "server.log"
        if os.environ.get(EXPLAIN_ENV) and log.exists():
            shutil.copyfile(log, target.with_name(f"{target.name}.{self.port}.log"))

    def create_database(self, name: str, template: str | None = None, *, durable: bool = False) -> str:
        """Create a database (optionally a copy of `template`) and return its URL.

        `durable` makes every commit to it wait for its WAL flush, for a test that stops the cluster in immediate
        mode: the cluster's `synchronous_commit=off` would lose the last commits, and the test would blame
        chargewire for events PostgreSQL forgot.
        """
        self.psql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        if durable:
            self.psql(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        return self.url(name)


def _statistics_options() -> str:
    """The server options STATEMENTS_ENV and EXPLAIN_ENV ask for; none when neither is set."""
    libraries = []
    options = ""
    if os.environ.get(STATEMENTS_ENV):
        libraries.append("pg_stat_statements")
        options += " -c pg_stat_statements.track_planning=on -c pg_stat_statements.max=10000"
    explain_ms = os.environ.get(EXPLAIN_ENV)
    if explain_ms:
        libraries.append("auto_explain")
        options += (
            f" -c auto_explain.log_min_duration={int(explain_ms)} -c auto_explain.log_analyze=on"
            " -c auto_explain.log_buffers=on -c auto_explain.log_nested_statements=on"
        )
    return f" -c shared_preload_libraries={','.join(libraries)}{options}" if libraries else ""


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster in a temporary folder; stop it and remove the folder afterwards."""
    bin_dir = find_bin_dir()
    owner = _UNPRIVILEGED_USER if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="chargewire-pg-"))
    data_dir = base / "data"
    data_dir.mkdir()
    if owner:
        try:
            account = pwd.getpwnam(owner)
        except KeyError as exc:
            raise PostgresUnavailable(f"running as root needs the `{owner}` system user (postgresql package)") from exc
        for path in (base, data_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
    cluster = PostgresCluster(bin_dir=bin_dir, data_dir=data_dir, port=free_port(), owner=owner)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
