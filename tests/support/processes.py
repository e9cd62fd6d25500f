"""Running the real `chargewire` command as a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from chargewire.store import migrate
from chargewire.store.database import create_database

CHARGEWIRE = str(Path(sys.executable).with_name("chargewire"))

T = TypeVar("T")


def cli(env: Mapping[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `chargewire ARGS` with `env` added to the environment."""
    result = subprocess.run(
        [CHARGEWIRE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"chargewire {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    """Wait until the server answers, or fail with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/api/v1/event-types", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"server at {base_url} did not answer within {timeout_s}s: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_server(env: Mapping[str, str], port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`chargewire serve` on 127.0.0.1:`port`, stopped (SIGTERM, then SIGKILL) when the block ends.

    Its output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a full one would
    block the server.
    """
    with tempfile.TemporaryDirectory(prefix="chargewire-serve-") as folder:
        log = Path(folder) / "serve.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [CHARGEWIRE, "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", process, log)
            yield process
        finally:
            stop_process(process, timeout_s=15)


def migrated_with_admin_token(env: Mapping[str, str], name: str) -> str:
    """Upgrade the database `env` names and create an admin token there; returns the token's text.

    In this process: `chargewire db upgrade` and `tokens create` spent 1.5 s each importing the service, and
    the tests of the command line run them.
    """
    settings = _settings(env)

    async def migrate_and_create() -> str:
        database = create_database(settings.effective_database_url)
        try:
            await migrate.upgrade(database)
        finally:
            await database.aclose()
        created = await _on_runtime(settings, lambda runtime: runtime.tokens.create(name, ["admin"]))
        return created.text

    return _in_own_thread(migrate_and_create())


def token_made_in_process(env: Mapping[str, str], scope: str, name: str = "ops") -> CreatedToken:
    """Make a token with `scope` on the migrated database `env` names, in this process.

    For tests of other commands that need one: a `chargewire tokens create` subprocess took ~1.5 s of CPU, and
    that command has tests of its own (tests/acceptance/test_cli.py).
    """
    return in_process(env, lambda runtime: runtime.tokens.create(name, [scope]))


def in_process(env: Mapping[str, str], action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `action` on a runtime of the migrated database `env` names, in this process.

    For a test's set-up and its checks of the stored state: each `chargewire` subprocess costs about a second of
    CPU, so a test runs only the commands it is about as subprocesses.
    """
    return _in_own_thread(_on_runtime(_settings(env), action))


def _settings(env: Mapping[str, str]) -> Settings:
    return Settings(
        database_url=env["CHARGEWIRE_DATABASE_URL"],
        secret_key=env["CHARGEWIRE_SECRET_KEY"],
        data_dir=Path(env["CHARGEWIRE_DATA_DIR"]),
    )


async def _on_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[T]]) -> T:
    async with await Runtime.open(settings) as runtime:
        return await action(runtime)


def _in_own_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    # A thread of its own: some callers are coroutines, whose event loop runs in this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def start_worker(env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A `chargewire worker` process with these settings, its output discarded (for tests that kill it)."""
    return subprocess.Popen(
        [CHARGEWIRE, "worker"], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Ask a process to stop (SIGTERM); kill it if it has not exited within `timeout_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def subscribe_webhook(api: httpx.Client, callback_url: str, event: str) -> None:
    """Subscribe `callback_url` to `event` through a running server's Notifications API (v2.0)."""
    body = {"via": "webhook", "notifications": [event], "webhook": {"callbackUrl": callback_url}}
    created = api.post("/public-api/notifications/v2.0", json=body)
    assert created.status_code == 201, created.text


def start_logged(env: Mapping[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`chargewire ARGS` with its output (stdout and stderr) written to `log`, for tests that read it afterwards."""
    with log.open("ab") as output:
        return subprocess.Popen([CHARGEWIRE, *args], env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)


def signal_and_wait(process: subprocess.Popen[bytes], signum: int, timeout_s: float = 60) -> int:
    """Send `signum` and return the exit code; fails (after a SIGKILL) if the process outlives `timeout_s`."""
    process.send_signal(signum)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the process did not exit within {timeout_s} s of signal {signum}") from None
