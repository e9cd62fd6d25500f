"""Shared fixtures: real PostgreSQL and Kafka, settings and a runtime on each storage backend, tokens, an in-process
API client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.devtools.postgres import PostgresCluster, throwaway_cluster
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.web import create_app
from tests.support import transport_origins
from tests.support.early_start import EarlyStarts
from tests.support.receiver import Receiver
from tests.support.template_copies import TemplateCopies

# The JVMs the tests start (the Kafka broker, started again by every broker fault, Maven and the Java receiver) run
# their code C1-compiled only: a broker is ready in about 60 % of the time, with less CPU taken from the tests.
os.environ.setdefault("JDK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
BACKENDS = ("sqlite", "postgresql")
POSTGRES_TEMPLATE = "chargewire_template"
# The URLs of databases made as copies of the migrated template: already at the newest revision.
_template_copies: set[str] = set()
_early = EarlyStarts()


async def migrate_database(url: str) -> None:
    """Upgrade the database at `url` to the newest revision."""
    database = create_database(url)
    await migrate.upgrade(database)
    await database.aclose()


def _open_postgres(stack: contextlib.ExitStack) -> tuple[PostgresCluster, TemplateCopies]:
    cluster = stack.enter_context(throwaway_cluster())
    stack.callback(_remove_behind, cluster)
    asyncio.run(migrate_database(cluster.create_database(POSTGRES_TEMPLATE)))
    return cluster, stack.enter_context(TemplateCopies(cluster, POSTGRES_TEMPLATE))


def _remove_behind(cluster: PostgresCluster) -> None:
    """Stop the cluster and leave its files to an `rm` of their own that the run does not wait for.

    A full run leaves ~500 databases (13 MB, ~520 files each): removing them took the last test's teardown 19 s.
    Dropping each after its test costs more (DROP DATABASE forces a checkpoint, beside the next test).
    """
    cluster.stop()
    removed = Path(tempfile.mkdtemp(prefix="chargewire-pg-removed-"))
    cluster.data_dir.rename(removed / "data")
    # The shell exits at once and leaves rm running in a session of its own.
    subprocess.run(["sh", "-c", 'rm -rf "$0" >/dev/null 2>&1 &', str(removed)], check=True, start_new_session=True)


def _open_kafka(stack: contextlib.ExitStack) -> KafkaBroker:
    return stack.enter_context(KafkaBroker())


def pytest_configure() -> None:
    """Name the test that made a socket transport freed unclosed (`transport_origins`)."""
    transport_origins.install()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    """Note the test about to run, for `transport_origins`."""
    transport_origins.running(item.nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the session's PostgreSQL and Kafka in threads when a collected test will ask for them."""
    if session.config.option.collectonly:
        return
    if any(_on_postgresql(item) for item in session.items):
        _early.start("postgres", _open_postgres)
    if any("kafka_broker" in getattr(item, "fixturenames", ()) for item in session.items):
        _early.start("kafka", _open_kafka)


def _on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    names = getattr(item, "fixturenames", ())
    on_backend = callspec is not None and callspec.params.get("backend") == "postgresql" and "database_url" in names
    return on_backend or "postgres_cluster" in names


def pytest_sessionfinish() -> None:
    """Stop what was started ahead and no test took."""
    _early.close()


@pytest.fixture(scope="session")
def _postgres() -> Iterator[tuple[PostgresCluster, TemplateCopies]]:
    with _early.taken("postgres", _open_postgres) as opened:
        yield opened


@pytest.fixture(scope="session")
def postgres_cluster(_postgres: tuple[PostgresCluster, TemplateCopies]) -> PostgresCluster:
    """One PostgreSQL cluster for the whole run, with a migrated template database."""
    return _postgres[0]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test's runtime copies: copying takes a millisecond, migrating 0.1-0.3 s."""
    path = tmp_path_factory.mktemp("sqlite-template") / "chargewire.db"
    asyncio.run(migrate_database(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real single-node Kafka broker for the run (fails loudly when java or the jars are missing)."""
    with _early.taken("kafka", _open_kafka) as running:
        yield running


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend a test runs on: every storage test runs once on each."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'chargewire.db'}"
    copies: TemplateCopies = request.getfixturevalue("_postgres")[1]
    url = copies.take()
    _template_copies.add(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test: its own database, a fixed secret key, loopback allowed for deliveries."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=TEST_SECRET_KEY,
        tenant="test-tenant",
        delivery_allow_networks=["127.0.0.0/8", "::1/128"],
    )


@pytest.fixture
async def runtime(settings: Settings, sqlite_template: Path) -> AsyncIterator[Runtime]:
    """An open runtime on the test's database (migrated: a new database starts as a copy of the template)."""
    url = settings.effective_database_url
    if url not in _template_copies and not copied_sqlite_template(url, sqlite_template):
        await migrate_database(url)
    async with await Runtime.open(settings) as opened:
        yield opened


def copied_sqlite_template(url: str, template: Path) -> bool:
    """Copy the migrated template to a SQLite URL's file if the file does not exist yet; False if not done."""
    prefix = "sqlite+aiosqlite:///"
    target = Path(url.removeprefix(prefix))
    if not url.startswith(prefix) or not target.is_absolute() or target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):  # the WAL, should closing have left one, holds committed pages too
        if template.with_name(template.name + suffix).exists():
            shutil.copyfile(template.with_name(template.name + suffix), target.with_name(target.name + suffix))
    return True


TokenFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def token_factory(runtime: Runtime) -> TokenFactory:
    """Makes API tokens: `await token_factory("events:publish")` returns the token text."""

    async def make(*scopes: str, name: str = "test token") -> str:
        created = await runtime.tokens.create(name, scopes or ("admin",))
        return created.text

    return make


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A recording HTTP receiver on loopback."""
    live = Receiver()
    await live.start()
    yield live
    await live.aclose()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}
