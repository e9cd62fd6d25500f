"""Shared fixtures: real PostgreSQL and Kafka, settings and a runtime on each storage backend, tokens, an in-process
API client."""

from __future__ import annotations

import asyncio
import itertools
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

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
BACKENDS = ("sqlite", "postgresql")
_TEMPLATE = "chargewire_template"
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole run, with a migrated template database."""
    with throwaway_cluster() as cluster:
        url = cluster.create_database(_TEMPLATE)

        async def migrate_template() -> None:
            database = create_database(url)
            await migrate.upgrade(database)
            await database.aclose()

        asyncio.run(migrate_template())
        yield cluster


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real single-node Kafka broker for the run (fails loudly when java or the jars are missing)."""
    with KafkaBroker() as running:
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
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"test_{next(_database_numbers)}", template=_TEMPLATE)


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
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """An open runtime on the test's database (migrated)."""
    database = create_database(settings.effective_database_url)
    await migrate.upgrade(database)
    await database.aclose()
    async with await Runtime.open(settings) as opened:
        yield opened


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


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}
