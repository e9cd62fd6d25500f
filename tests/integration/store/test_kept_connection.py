"""A connection kept out of PostgreSQL's pool for one writer: a second writer meanwhile gets a pooled one."""

from __future__ import annotations

import pytest

from chargewire.runtime import Runtime
from chargewire.store.dialects.postgresql_driver import KeptConnection


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_statement_sent_while_the_kept_connection_is_in_use_goes_on_another_connection(
    runtime: Runtime,
) -> None:
    kept = KeptConnection(runtime.database.engine)
    async with kept.driver("first") as first, kept.driver("second") as second:
        kept_session = await first.fetchval("SELECT pg_backend_pid()")
        other_session = await second.fetchval("SELECT pg_backend_pid()")
    async with kept.driver("again") as again:
        again_session = await again.fetchval("SELECT pg_backend_pid()")

    assert other_session != kept_session
    assert again_session == kept_session  # the kept one again, once free
