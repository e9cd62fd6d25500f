"""Storage is visible after an expiry run: table sizes, oldest rows and the run itself in `/metrics` and in the
back office overview's figures, on both backends."""

from __future__ import annotations

from datetime import timedelta

import httpx

from chargewire.backoffice.rendering import page_template
from chargewire.backoffice.routes.overview import overview_json
from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.dispatch.expiry import Expirer
from chargewire.runtime import Runtime
from chargewire.store.retention import RetentionPolicy
from tests.conftest import TokenFactory, bearer

BOOT = load_event_types()["BootNotification"].example
POLICY = RetentionPolicy(delivered=timedelta(days=30), failed=timedelta(days=90))


async def _expire_a_month_later(runtime: Runtime) -> None:
    await runtime.publisher.publish([{**BOOT, "chargePointId": 1}, {**BOOT, "chargePointId": 2}])
    later = utcnow() + timedelta(days=31)
    await Expirer(runtime.retention, POLICY, "wrk_test", interval_s=60, clock=lambda: later).run_once()


async def test_metrics_show_table_sizes_and_what_the_last_expiry_run_removed(
    runtime: Runtime, api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    await _expire_a_month_later(runtime)

    response = await api.get("/metrics", headers=bearer(await token_factory("metrics:read")))

    lines = response.text.splitlines()
    assert 'chargewire_expiry_last_run_removed_rows{table="events"} 2.0' in lines
    assert "chargewire_expiry_last_run_failed 0.0" in lines
    events_bytes = [
        float(line.split()[-1])
        for line in lines
        if line.startswith("chargewire_table_bytes{") and 'table="events"' in line
    ]
    assert sum(events_bytes) > 0  # on PostgreSQL, over its partitions


async def test_the_overview_shows_the_last_expiry_run_and_each_tables_size(runtime: Runtime) -> None:
    await _expire_a_month_later(runtime)

    shown = overview_json(await runtime.overview.snapshot())["storage"]

    assert shown["removed"]["events"] == 2
    assert shown["error"] is None
    assert {"events", "deliveries", "attempts"} <= {table["table"] for table in shown["tables"]}


async def test_the_overview_page_lists_each_tables_size_and_the_last_expiry_run(runtime: Runtime) -> None:
    await _expire_a_month_later(runtime)
    overview = await runtime.overview.snapshot()

    page = page_template("overview.html").render(
        user=None, csrf_token="", flashes=[], path="/backoffice/overview", overview=overview, last_minute={}, poll_s=5
    )

    assert "removed 2 events, 0 deliveries, 0 attempts, 0 attempt_batches." in page
    assert '<td data-label="Table" class="mono">deliveries</td>' in page
