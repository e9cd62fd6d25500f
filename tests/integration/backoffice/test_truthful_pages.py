"""The back office tells the truth: health from the latest outcomes, labelled latency, actions that apply,
subscriptions named by what they are, and nothing cut off or broken mid-word. In Chromium, on each store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from chargewire.catalog import load_event_types
from tests.conftest import bearer
from tests.integration.backoffice.conftest import PHONE, Backoffice, sign_in
from tests.support.receiver import Reply, in_turn

BOOT = load_event_types()["BootNotification"].example


def _subscribe(backoffice: Backoffice, path: str, description: str, **extra: Any) -> str:
    body = {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": backoffice.receiver.url(path)},
        "description": description,
        **extra,
    }
    response = backoffice.api.post("/public-api/notifications/v2.0", headers=bearer(backoffice.owner_token), json=body)
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def _delivered(backoffice: Backoffice, subscription_id: str) -> list[dict[str, Any]]:
    query = {"subscription": subscription_id, "status": "delivered"}
    return list(backoffice.api.get("/api/v1/deliveries", params=query).json()["data"])


def _until(found: Callable[[], Any], what: str) -> Any:
    """What `found` returns once it is something, within 30 s."""
    deadline = time.monotonic() + 30
    while not (result := found()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result


def _publish_and_wait_for_delivery(backoffice: Backoffice, subscription_id: str) -> dict[str, Any]:
    backoffice.api.post("/api/v1/events", json=BOOT).raise_for_status()
    return _until(lambda: _delivered(backoffice, subscription_id), "the delivery did not arrive")[0]


def test_a_receiver_whose_refusal_later_succeeded_is_healthy_and_its_delivery_offers_no_retry(
    page: Page, backoffice: Backoffice
) -> None:
    backoffice.receiver.on("/hooks/flaky", in_turn(Reply(503), Reply(202)))
    # The refused delivery waits an hour for its retry while the next one is delivered.
    subscription_id = _subscribe(backoffice, "/hooks/flaky", "flaky but fine", retrySchedule=[0, 3600])
    backoffice.api.post("/api/v1/events", json=BOOT).raise_for_status()
    # Webhook deliveries keep no order: the next is published once the first has met its refusal.
    _until(lambda: backoffice.receiver.arrived("/hooks/flaky"), "the first delivery was not attempted")
    delivery = _publish_and_wait_for_delivery(backoffice, subscription_id)
    assert (
        backoffice.api.get("/api/v1/deliveries", params={"subscription": subscription_id}).json()["data"][1]["status"]
        == "pending"
    )
    sign_in(page)
    page.goto(f"/backoffice/subscriptions/{subscription_id}")
    expect(page.locator(".badge-healthy")).to_have_text("healthy")
    expect(page.locator(".badge-failing")).to_have_count(0)
    page.goto(f"/backoffice/deliveries/{delivery['id']}")
    expect(page.locator("#delivery-status")).to_have_text("delivered")
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)


def test_the_delivery_log_names_subscriptions_by_description(page: Page, backoffice: Backoffice) -> None:
    backoffice.receiver.on("/hooks/named", in_turn(Reply(202)))
    subscription_id = _subscribe(backoffice, "/hooks/named", "billing system")
    _publish_and_wait_for_delivery(backoffice, subscription_id)
    sign_in(page)
    page.goto(f"/backoffice/deliveries?subscription={subscription_id}")
    cell = page.locator("table.deliveries td[data-label='Subscription']").first
    expect(cell).to_contain_text("billing system")
    expect(cell).to_contain_text(subscription_id)


def test_the_overview_says_its_latency_includes_retry_waits_and_charts_queue_depth_at_once(
    page: Page, backoffice: Backoffice
) -> None:
    sign_in(page)
    expect(page.locator(".card").filter(has_text="p99")).to_contain_text("incl. retry waits")
    expect(page.locator("#chart-latency-title")).to_contain_text("including retry waits")
    # The server sampled the queue since it started: the first drawing already has points.
    expect(page.locator("[data-chart='queue'] .line-due").first).to_be_attached()


def test_the_tokens_table_shows_each_tokens_state(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.goto("/backoffice/tokens")
    states = page.locator("table.tokens td[data-label='State']")
    expect(states.first).to_have_text("active")
    expect(states.filter(has_text="Revoke")).to_have_count(0)


def test_date_filters_show_their_whole_value(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.goto("/backoffice/deliveries?since=2026-11-24T08:15:30&until=2026-11-24T09:15:30")
    for name in ("since", "until"):
        shown, natural = page.evaluate(
            """(name) => {
                const input = document.querySelector(`input[name='${name}']`);
                const probe = input.cloneNode();
                probe.style.cssText = 'position:absolute;width:auto;visibility:hidden';
                document.body.appendChild(probe);
                const sizes = [input.getBoundingClientRect().width, probe.getBoundingClientRect().width];
                probe.remove();
                return sizes;
            }""",
            name,
        )
        assert shown >= natural, f"the {name} filter is {shown}px wide, its value needs {natural}px"


def test_ids_and_urls_never_break_mid_word_on_a_phone(page: Page, backoffice: Backoffice) -> None:
    _subscribe(backoffice, "/hooks/" + "a-rather-long-path-segment/" * 4, "long url")
    page.set_viewport_size(PHONE)
    sign_in(page)
    page.goto("/backoffice/subscriptions")
    heights = page.evaluate(
        """() => [...document.querySelectorAll('table.subscriptions .mono')].map(element => [
            element.textContent, element.getBoundingClientRect().height, parseFloat(getComputedStyle(element).fontSize)
        ])"""
    )
    assert heights
    broken = [text for text, height, font_size in heights if height > 2 * font_size]
    assert broken == []


def test_event_descriptions_in_the_checklist_are_shown_whole(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.goto("/backoffice/subscriptions/new?via=webhook")
    cut = page.evaluate(
        """() => [...document.querySelectorAll('.event-description')]
            .filter(element => element.scrollHeight > element.clientHeight + 1).length"""
    )
    assert cut == 0
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('.event-option')]
            .filter(element => element.scrollWidth > element.clientWidth + 1)
            .map(element => element.textContent.trim())"""
    )
    assert overflowing == []


def test_the_form_reports_a_blocked_url_together_with_the_other_errors(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.goto("/backoffice/subscriptions/new?via=webhook")
    page.get_by_label("API token", exact=True).select_option(backoffice.owner_token_id)
    page.get_by_label("Callback URL", exact=True).fill("http://10.0.0.1/hook")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.locator("#f-notifications-error")).to_be_visible()
    expect(page.locator("#f-webhook-callbackUrl-error")).to_contain_text("blocked address")
