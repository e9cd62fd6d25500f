"""Requests that miss the token cache together share one read of the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from chargewire.models import ApiToken, Scope
from chargewire.security import SecretBox, token_hash
from chargewire.services.tokens import TokenService

_TEXT = "cw_test_token"
_TOKEN = ApiToken(
    id="tok_1",
    name="publisher",
    scopes=(Scope.EVENTS_PUBLISH,),
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    last_used_at=datetime.now(UTC),
)


class _SlowStore:
    """Answers reads once released, counting them."""

    def __init__(self, error: Exception | None = None) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self._error = error

    async def find_active_by_hash(self, key: str) -> ApiToken | None:
        self.reads += 1
        await self.release.wait()
        if self._error is not None:
            raise self._error
        return _TOKEN if key == token_hash(_TEXT) else None


def _service(store: _SlowStore) -> TokenService:
    return TokenService(store, SecretBox("k" * 32))  # type: ignore[arg-type]  # the store's read alone


async def test_requests_missing_the_cache_at_once_share_one_read() -> None:
    store = _SlowStore()
    service = _service(store)
    waiting = [asyncio.ensure_future(service.authenticate(_TEXT)) for _ in range(20)]
    await asyncio.sleep(0)
    store.release.set()

    assert [token.id for token in await asyncio.gather(*waiting)] == ["tok_1"] * 20
    assert store.reads == 1


async def test_a_request_that_gives_up_leaves_the_shared_read_to_the_others() -> None:
    store = _SlowStore()
    service = _service(store)
    first = asyncio.ensure_future(service.authenticate(_TEXT))
    second = asyncio.ensure_future(service.authenticate(_TEXT))
    await asyncio.sleep(0)
    first.cancel()
    store.release.set()

    assert (await second).id == "tok_1"
    assert first.cancelled()


async def test_a_failed_shared_read_fails_every_request_that_waited_for_it() -> None:
    store = _SlowStore(RuntimeError("read failed"))
    service = _service(store)
    waiting = [asyncio.ensure_future(service.authenticate(_TEXT)) for _ in range(3)]
    await asyncio.sleep(0)
    store.release.set()

    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["read failed"] * 3
    assert store.reads == 1
    with pytest.raises(RuntimeError):
        await service.authenticate(_TEXT)  # the next miss reads again
    assert store.reads == 2
