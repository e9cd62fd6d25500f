"""Fixtures shared by the API tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.web import create_app


@contextlib.asynccontextmanager
async def api_with(settings: Settings, **update: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API of another runtime on the same database, with these settings changed."""
    async with await Runtime.open(settings.model_copy(update=update)) as opened:
        transport = httpx.ASGITransport(app=create_app(opened))
        async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as client:
            yield client


@pytest.fixture
async def strict_api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a runtime on the same database whose allow-list is empty."""
    async with api_with(settings, delivery_allow_networks=[]) as client:
        yield client
