"""The delivery log and the overview in Chromium: failed attempts in detail, retry, and live charts."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from playwright.sync_api import Page, expect

from chargewire.catalog import load_event_types
from tests.conftest import bearer
from tests.integration.backoffice.conftest import Backoffice, shoot, sign_in
from tests.support.foreign_secrets import encrypt_under_another_key
from tests.support.receiver import Reply, always, in_turn
from tests.support.waiting import wait_until


def _subscribe(backoffice: Backoffice, path: str, description: str) -> str:
    response = backoffice.api.post(
        "/public-api/notifications/v2.0",
        headers=bearer(backoffice.owner_token),
        json={
            "via": "webhook",
            "notifications": ["BootNotification", "NetworkStatusNotification"],
            "webhook": {"callbackUrl": backoffice.receiver.url(path)},
            "description": description,
        },
    )
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def _publish(backoffice: Backoffice, count: int) -> None:
    example = load_event_types()["BootNotification"].example
    backoffice.api.post("/api/v1/events", json=[example] * count).raise_for_status()


def _deliveries(backoffice: Backoffice, **query: Any) -> list[dict[str, Any]]:
    response = backoffice.api.get("/api/v1/deliveries", params=query)
    response.raise_for_status()
    return list(response.json()["data"])


def test_failed_deliveries_show_each_attempt_and_can_be_retried(page: Page, backoffice: Backoffice) -> None:
    backoffice.receiver.on("/hooks/down", always(500))
    subscription_id = _subscribe(backoffice, "/hooks/down", "receiver that is down")
    _publish(backoffice, 2)
    wait_until(
        lambda: len(_deliveries(backoffice, subscription=subscription_id, status="failed")) == 2, "failures", poll_s=0.2
    )

    sign_in(page)
    page.goto(f"/backoffice/subscriptions/{subscription_id}")
    expect(page.locator(".badge-failing")).to_be_visible()
    page.get_by_role("main").get_by_role("link", name="Delivery log").click()
    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.deliveries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("The receiver answered 500")
    shoot(page, backoffice, "deliveries-failed")

    rows.first.get_by_role("link", name="Details").click()
    expect(page.locator("#delivery-status")).to_have_text("failed")
    attempts = page.locator("details.attempt")
    expect(attempts).to_have_count(3)
    for attempt in attempts.all():
        expect(attempt.locator(".attempt-status")).to_have_text("500")
        expect(attempt.locator(".attempt-error")).to_contain_text("500")
    expect(attempts.first.locator(".response-body")).to_have_text("ok")
    delivery_id = page.locator("h1").inner_text()
    shoot(page, backoffice, "delivery-failed")

    backoffice.receiver.on("/hooks/down", always(202))
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("status")).to_contain_text("Retry queued")
    deadline = time.monotonic() + 30
    while page.locator("#delivery-status").inner_text() != "delivered":
        assert time.monotonic() < deadline, "the retried delivery was not delivered"
        time.sleep(0.3)
        page.reload()
    expect(page.locator("details.attempt")).to_have_count(4)
    expect(page.locator("[data-attempt='4'] .attempt-status")).to_have_text("202")
    detail = backoffice.api.get(f"/api/v1/deliveries/{delivery_id}").json()["data"]
    assert (detail["status"], [a["statusCode"] for a in detail["attemptLog"]]) == ("delivered", [500, 500, 500, 202])


def test_resend_form_queues_failed_deliveries_of_the_window(page: Page, backoffice: Backoffice) -> None:
    backoffice.receiver.on("/hooks/resend", always(503))
    subscription_id = _subscribe(backoffice, "/hooks/resend", "resend me")
    _publish(backoffice, 1)
    wait_until(
        lambda: len(_deliveries(backoffice, subscription=subscription_id, status="failed")) == 1, "failure", poll_s=0.2
    )
    backoffice.receiver.on("/hooks/resend", always(202))

    sign_in(page)
    page.goto(f"/backoffice/subscriptions/{subscription_id}")
    page.get_by_label("From (UTC)", exact=True).fill("2026-12-31T10:00:00")
    page.get_by_label("Until (UTC)", exact=True).fill("2026-01-01T10:00:00")
    page.get_by_role("button", name="Resend failed deliveries").click()
    expect(page.locator("#f-endTime-error")).to_have_text(
        "The end time must be a date after or equal to the start time."
    )
    page.get_by_label("From (UTC)", exact=True).fill("")
    page.get_by_label("Until (UTC)", exact=True).fill("")
    page.get_by_role("button", name="Resend failed deliveries").click()
    expect(page.get_by_role("status")).to_have_text("Queued 1 failed delivery for one more attempt.")
    wait_until(
        lambda: len(_deliveries(backoffice, subscription=subscription_id, status="delivered")) == 1,
        "resend",
        poll_s=0.2,
    )
    page.get_by_role("button", name="Resend failed deliveries").click()
    expect(page.get_by_role("alert")).to_contain_text("resent less than")


def test_overview_charts_update_live_as_deliveries_happen(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    overview = page.locator("#overview")
    expect(overview).to_have_attribute("data-updated", re.compile(".+"))
    first_update = overview.get_attribute("data-updated")

    backoffice.receiver.on("/hooks/ok", always(202))
    backoffice.receiver.on("/hooks/flaky", in_turn(Reply(503), Reply(202)))
    backoffice.receiver.on("/hooks/broken", always(500))
    for path in ("/hooks/ok", "/hooks/flaky", "/hooks/broken"):
        _subscribe(backoffice, path, f"overview {path}")
    _publish(backoffice, 20)
    # Every event tried once; the open breaker then paces the retries, one probe at a time.
    wait_until(
        lambda: len(backoffice.receiver.on_path("/hooks/broken")) >= 20, "the broken receiver's attempts", poll_s=0.2
    )

    # No reload: the page polls and redraws by itself.
    expect(overview.locator("[data-chart='outcomes'] rect.fill-delivered").first).to_be_attached()
    expect(overview.locator("[data-chart='outcomes'] rect.fill-failed").first).to_be_attached()
    expect(overview.locator("[data-chart='latency'] path.line-p99")).to_be_attached()
    expect(overview.locator("[data-failing]")).to_contain_text("/hooks/broken")
    assert overview.get_attribute("data-updated") != first_update
    expect(overview.locator("[data-figure='p50']")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    shoot(page, backoffice, "overview")


def test_a_subscription_written_under_another_secret_key_shows_its_own_error_class(
    page: Page, backoffice: Backoffice
) -> None:
    subscription_id = _subscribe(backoffice, "/hooks/elsewhere", "written under another key")
    env = backoffice.env
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        rewrite = encrypt_under_another_key(
            env["CHARGEWIRE_DATABASE_URL"], env["CHARGEWIRE_SECRET_KEY"], subscription_id
        )
        thread.submit(asyncio.run, rewrite).result()
    _publish(backoffice, 1)
    wait_until(
        lambda: len(_deliveries(backoffice, subscription=subscription_id, status="failed")) == 1, "failure", poll_s=0.2
    )
    [delivery] = _deliveries(backoffice, subscription=subscription_id)

    sign_in(page)
    page.goto(f"/backoffice/deliveries/{delivery['id']}")
    for attempt in page.locator("details.attempt").all():
        expect(attempt.locator(".attempt-error")).to_contain_text("secret_undecryptable")
        expect(attempt.locator(".attempt-error")).to_contain_text("CHARGEWIRE_SECRET_KEY")
    assert backoffice.receiver.on_path("/hooks/elsewhere") == []
