"""`/healthz` answers while the process lives; `/readyz` answers 200 only when the database takes writes, the
schema is current and the delivery loops run, and otherwise 503 naming the check that failed."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from chargewire.runtime import Runtime


async def test_healthz_answers_that_the_process_is_alive(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_with_each_check_when_all_is_in_order(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "migrations": True,
        "delivery": True,
    }
    assert checks["delivery"]["detail"] == "no worker in this process"


async def test_readyz_answers_503_naming_the_migrations_when_the_schema_is_behind(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.transaction() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    response = await api.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["migrations"]["ok"] is False
    assert "0006" in body["checks"]["migrations"]["detail"]
    assert body["checks"]["database"]["ok"] is True
