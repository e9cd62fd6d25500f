"""A real `chargewire serve` per test module and backend, an operator, tokens, a receiver, and Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from chargewire.config import Settings
from chargewire.devtools.postgres import PostgresCluster
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from tests.conftest import BACKENDS, POSTGRES_TEMPLATE, TEST_SECRET_KEY, bearer, copied_sqlite_template
from tests.support.browser import chromium
from tests.support.processes import CHARGEWIRE
from tests.support.receiver import Receiver
from tests.support.threaded_receiver import receiver_in_thread

# docs/screenshots is rewritten only when asked (`make screenshots`): a test run leaves tracked files alone.
SCREENSHOTS = Path(os.environ.get("CHARGEWIRE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "chargewire-screenshots")
OPERATOR_EMAIL = "ops@example.com"
OPERATOR_PASSWORD = "a long operator password"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
expect.set_options(timeout=20_000)


@dataclass
class Backoffice:
    """A running server with its operator and tokens, the receiver it delivers to, and an API client."""

    backend: str
    base_url: str
    env: dict[str, str]
    admin_token: str
    owner_token_id: str
    owner_token: str
    receiver: Receiver
    api: httpx.Client
    log: Path

    def subscription(self, subscription_id: str) -> httpx.Response:
        """GET the subscription from the public API."""
        return self.api.get(f"/public-api/notifications/v2.0/{subscription_id}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _served(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """`chargewire serve` with its output in a file (a pipe nobody reads would fill and stall the server)."""
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [CHARGEWIRE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited with {process.returncode}: {log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/api/v1/event-types", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"server did not answer within 60 s: {log.read_text()[-3000:]}")
                time.sleep(0.1)
            yield base_url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module", params=BACKENDS)
def backoffice(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backoffice]:
    """A fresh database and server for this test module on one backend."""
    backend = str(request.param)
    folder = tmp_path_factory.mktemp(f"backoffice-{backend}")
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'chargewire.db'}"
        copied_sqlite_template(url, request.getfixturevalue("sqlite_template"))
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(f"backoffice_{uuid.uuid4().hex[:12]}", template=POSTGRES_TEMPLATE)
    env = {
        "CHARGEWIRE_DATABASE_URL": url,
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(folder / "data"),
        "CHARGEWIRE_CONFIG": str(folder / "absent.toml"),
        # These tests poll the API far more than a client would; the budgets have tests of their own.
        "CHARGEWIRE_API_RATE_LIMIT_PER_MINUTE": "1000000",
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "CHARGEWIRE_RETRY_SCHEDULE_S": "0,1,1",
        "CHARGEWIRE_RETRY_JITTER": "0",
        "CHARGEWIRE_WORKER_POLL_INTERVAL_S": "0.1",
        # A test module may add settings of its own (the OCPP tap's, for one).
        **getattr(request.module, "SERVER_SETTINGS", {}),
    }
    settings = Settings(database_url=url, data_dir=folder / "data", secret_key=TEST_SECRET_KEY)
    admin, owner = asyncio.run(_operator_and_tokens(settings))
    log = folder / "server.log"
    with (
        receiver_in_thread() as receiver,
        _served(env, _free_port(), log) as base_url,
        httpx.Client(base_url=base_url, headers=bearer(admin.text), timeout=10) as api,
    ):
        yield Backoffice(backend, base_url, env, admin.text, owner.token.id, owner.text, receiver, api, log)


async def _operator_and_tokens(settings: Settings) -> tuple[CreatedToken, CreatedToken]:
    """The operator, an admin token and a subscription owner's token, made in this process.

    Each of the four `chargewire` commands that did this (migrations included: the database is a copy of the
    migrated template) spent 1.5 s importing the service; the CLI's own tests run them.
    """
    async with await Runtime.open(settings) as runtime:
        await runtime.users.create(OPERATOR_EMAIL, OPERATOR_PASSWORD)
        admin = await runtime.tokens.create("ops-admin", ["admin"])
        owner = await runtime.tokens.create("fleet-app", ["notifications:manage"])
    return admin, owner


@pytest.fixture(scope="module")
def browser(backoffice: Backoffice) -> Iterator[Browser]:
    """One headless Chromium per server.

    It starts after the server, and stops before the next backend's server is set up: Playwright's sync API
    runs an event loop in this thread, and setting up PostgreSQL needs `asyncio.run` here.
    """
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, backoffice: Backoffice) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop width."""
    context = browser.new_context(viewport=DESKTOP, base_url=backoffice.base_url)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page) -> None:
    """Sign in as the operator through the form."""
    page.goto("/backoffice/sign-in")
    page.get_by_label("Email", exact=True).fill(OPERATOR_EMAIL)
    page.get_by_label("Password", exact=True).fill(OPERATOR_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def shoot(page: Page, backoffice: Backoffice, name: str, full_page: bool = True) -> None:
    """Save a screenshot into SCREENSHOTS (from the SQLite run only, so each page is taken once)."""
    if backoffice.backend != "sqlite":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
