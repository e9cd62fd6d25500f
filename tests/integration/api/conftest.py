"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chargewire.api import create_app
from chargewire.config import Settings
from chargewire.runtime import Runtime


@pytest.fixture
async def strict_api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a runtime on the same database whose allow-list is empty."""
    async with await Runtime.open(settings.model_copy(update={"delivery_allow_networks": []})) as opened:
        transport = httpx.ASGITransport(app=create_app(opened))
        async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as client:
            yield client
