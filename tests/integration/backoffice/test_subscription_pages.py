"""Subscriptions managed through the pages in Chromium, each step checked against the API and the receiver."""

from __future__ import annotations

import json
import time

from playwright.sync_api import Page, expect

from chargewire.catalog import load_event_types
from chargewire.receiver import verify_notification
from tests.integration.backoffice.conftest import PHONE, Backoffice, shoot, sign_in
from tests.support.receiver import Received


def _wait_for_requests(backoffice: Backoffice, path: str, count: int, timeout_s: float = 30) -> list[Received]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arrived = backoffice.receiver.on_path(path)
        if len(arrived) >= count:
            return arrived
        time.sleep(0.1)
    raise AssertionError(f"{count} request(s) to {path} expected; {len(backoffice.receiver.on_path(path))} arrived")


def _choose_event(page: Page, search: str, name: str) -> None:
    page.get_by_placeholder("Search events by name or description").fill(search)
    page.locator(f"input[name='notifications'][value='{name}']").check()


def _reload_until(page: Page, selector: str, timeout_s: float = 30) -> None:
    """Reload (as an operator presses Refresh) until the selector shows up."""
    deadline = time.monotonic() + timeout_s
    while page.locator(selector).count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} did not appear on {page.url}")
        time.sleep(0.3)
        page.reload()


def test_operator_creates_tests_disables_and_deletes_a_webhook_subscription(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Subscriptions").click()
    page.get_by_role("link", name="New webhook subscription").click()
    expect(page.get_by_label("Topic", exact=True)).to_be_hidden()
    page.get_by_label("API token", exact=True).select_option(backoffice.owner_token_id)
    callback = backoffice.receiver.url("/hooks/lifecycle")
    page.get_by_label("Callback URL", exact=True).fill(callback)
    _choose_event(page, "boot", "BootNotification")
    expect(page.locator("[data-event-option]", has_text="TariffChangedNotification")).to_be_hidden()
    page.get_by_placeholder("Search events by name or description").fill("session start")
    deprecated = page.locator("[data-event-option]", has_text="SessionStartStopNotification")
    expect(deprecated.locator(".badge-deprecated")).to_have_text("deprecated")
    _choose_event(page, "session update", "SessionUpdateNotification")
    page.get_by_placeholder("Search events by name or description").fill("")
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected")
    page.get_by_label("Description", exact=True).fill("fleet app webhook")
    shoot(page, backoffice, "subscription-new-webhook")
    page.get_by_role("button", name="Create subscription").click()

    expect(page.get_by_role("heading", name="Subscription created")).to_be_visible()
    subscription_id = page.locator("#created-subscription").inner_text()
    secret = page.locator("#signing-secret").inner_text()
    assert secret.startswith("whsec_")
    shoot(page, backoffice, "subscription-created")
    stored = backoffice.subscription(subscription_id)
    assert stored.status_code == 200
    assert (
        stored.json()["data"].items()
        >= {
            "via": "webhook",
            "notifications": ["BootNotification", "SessionUpdateNotification"],
            "webhook": {"callbackUrl": callback},
            "enabled": True,
            "description": "fleet app webhook",
            "filter": None,
            "retrySchedule": None,
        }.items()
    )

    page.get_by_role("link", name="Go to the subscription").click()
    expect(page.locator("h1")).to_have_text(subscription_id)
    page.get_by_label("Event", exact=True).select_option("BootNotification")
    shoot(page, backoffice, "subscription")
    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("Test event queued for delivery.")).to_be_visible()
    delivery_id = page.locator("h1").inner_text()

    [received] = _wait_for_requests(backoffice, "/hooks/lifecycle", 1)
    assert json.loads(received.body) == load_event_types()["BootNotification"].example
    # The signing secret shown once on the page and the token picked in the form both sign the delivery.
    verify_notification(received.body, received.headers, signing_secret=secret, api_token=backoffice.owner_token)

    _reload_until(page, "[data-attempt='1']")
    expect(page.locator("#delivery-status")).to_have_text("delivered")
    attempt = page.locator("[data-attempt='1']")
    expect(attempt.locator(".attempt-status")).to_have_text("202")
    expect(attempt.locator(".request-headers")).to_contain_text(received.headers["webhook-id"])
    expect(attempt.locator(".request-body")).to_contain_text('"notification": "BootNotification"')
    expect(attempt.locator(".response-body")).to_have_text("ok")
    expect(attempt.locator(".attempt-duration")).to_contain_text(" ms")
    api_delivery = backoffice.api.get(f"/api/v1/deliveries/{delivery_id}").json()["data"]
    assert api_delivery["status"] == "delivered"
    assert [a["statusCode"] for a in api_delivery["attemptLog"]] == [202]
    shoot(page, backoffice, "delivery")

    page.get_by_role("link", name=subscription_id).first.click()
    page.get_by_role("main").get_by_role("link", name="Delivery log").click()
    page.get_by_label("Status", exact=True).select_option("delivered")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.deliveries tbody tr")).to_have_count(1)
    expect(page.locator("table.deliveries tbody")).to_contain_text("BootNotification")
    shoot(page, backoffice, "deliveries")

    page.goto(f"/backoffice/subscriptions/{subscription_id}")
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("Subscription disabled")).to_be_visible()
    assert backoffice.subscription(subscription_id).json()["data"]["enabled"] is False

    page.get_by_role("button", name="Rotate signing secret").click()
    expect(page.get_by_role("heading", name="New signing secret")).to_be_visible()
    assert page.locator("#signing-secret").inner_text() not in (secret, "")
    shoot(page, backoffice, "secret-rotated")

    page.get_by_role("link", name="Back to the subscription").click()
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete this subscription?")).to_be_visible()
    shoot(page, backoffice, "subscription-delete")
    page.get_by_role("button", name="Delete subscription").click()
    expect(page.get_by_text(f"Subscription {subscription_id} deleted.")).to_be_visible()
    assert backoffice.subscription(subscription_id).status_code == 404
    assert len(backoffice.receiver.on_path("/hooks/lifecycle")) == 1


def test_kafka_subscription_form_shows_security_fields_by_protocol_and_keeps_secrets_on_edit(
    page: Page, backoffice: Backoffice
) -> None:
    sign_in(page)
    page.goto("/backoffice/subscriptions/new?via=kafka")
    expect(page.get_by_label("Callback URL", exact=True)).to_be_hidden()
    page.get_by_label("API token", exact=True).select_option(backoffice.owner_token_id)
    page.get_by_label("Topic", exact=True).fill("charging-events")
    page.get_by_label("Brokers", exact=True).fill("kafka-1.example.com:9092\nkafka-2.example.com:9092")
    page.get_by_label("Compression", exact=True).select_option("lz4")
    expect(page.get_by_label("Username", exact=True)).to_be_hidden()
    expect(page.get_by_label("CA certificate (PEM)", exact=True)).to_be_hidden()
    page.get_by_label("Security protocol", exact=True).select_option("SASL_SSL")
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    expect(page.get_by_label("CA certificate (PEM)", exact=True)).to_be_visible()
    page.get_by_label("Security protocol", exact=True).select_option("SASL_PLAINTEXT")
    expect(page.get_by_label("CA certificate (PEM)", exact=True)).to_be_hidden()
    page.get_by_label("Mechanism", exact=True).select_option("SCRAM-SHA-256")
    page.get_by_label("Username", exact=True).fill("fleet")
    page.get_by_label("Password", exact=True).fill("a kafka password")
    _choose_event(page, "tariff", "TariffChangedNotification")
    _choose_event(page, "session update", "SessionUpdateNotification")
    page.get_by_placeholder("Search events by name or description").fill("")
    shoot(page, backoffice, "subscription-new-kafka")
    page.get_by_role("button", name="Create subscription").click()

    expect(page.get_by_role("heading", name="Subscription created")).to_be_visible()
    subscription_id = page.locator("#created-subscription").inner_text()
    data = backoffice.subscription(subscription_id).json()["data"]
    assert data["via"] == "kafka"
    assert data["notifications"] == ["SessionUpdateNotification", "TariffChangedNotification"]
    assert data["kafka"] == {
        "topic": "charging-events",
        "brokers": ["kafka-1.example.com:9092", "kafka-2.example.com:9092"],
        "compressionCodec": "lz4",
        "securityProtocol": "SASL_PLAINTEXT",
        "saslMechanism": "SCRAM-SHA-256",
        "saslUsername": "fleet",
        "saslPassword": None,
        "caCertificate": None,
        "clientCertificate": None,
        "clientKey": None,
    }

    page.get_by_role("link", name="Go to the subscription").click()
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Username", exact=True)).to_have_value("fleet")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    page.get_by_label("Topic", exact=True).fill("charging-events-v2")
    page.get_by_label("Retry schedule (seconds)", exact=True).fill("10, 60, 600")
    shoot(page, backoffice, "subscription-edit-kafka")
    # The password stays empty: the stored one is kept, or the API's validation would ask for it.
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Subscription saved.")).to_be_visible()
    data = backoffice.subscription(subscription_id).json()["data"]
    assert data["kafka"]["topic"] == "charging-events-v2"
    assert data["kafka"]["saslUsername"] == "fleet"
    assert data["retrySchedule"] == [10.0, 60.0, 600.0]


def test_form_errors_appear_next_to_their_fields_as_the_api_reports_them(page: Page, backoffice: Backoffice) -> None:
    before = backoffice.api.get("/public-api/notifications/v2.0").json()["data"]
    sign_in(page)
    page.goto("/backoffice/subscriptions/new?via=webhook")
    page.get_by_label("API token", exact=True).select_option(backoffice.owner_token_id)
    page.get_by_label("Callback URL", exact=True).fill("ftp://example.com/hook")
    page.get_by_label("Payload filter (JSON)", exact=True).fill("{not json")
    page.get_by_role("button", name="Create subscription").click()

    api_errors = backoffice.api.post(
        "/public-api/notifications/v2.0",
        json={
            "via": "webhook",
            "notifications": ["BootNotification"],
            "webhook": {"callbackUrl": "ftp://example.com/hook"},
        },
    ).json()["errors"]
    callback_error = page.locator("#f-webhook-callbackUrl-error")
    expect(callback_error).to_have_text(api_errors["webhook.callbackUrl"][0])
    expect(page.get_by_label("Callback URL", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Callback URL", exact=True)).to_have_value("ftp://example.com/hook")
    expect(page.locator("#f-notifications-error")).to_have_text("The notifications field must name at least one event.")
    expect(page.locator("#f-filter-error")).to_contain_text("The filter must be a JSON object")
    expect(page.locator("#error-summary")).to_contain_text("3 problems to fix")
    expect(page.locator("#error-summary")).to_be_focused()
    shoot(page, backoffice, "subscription-form-errors")

    page.get_by_label("Kafka (a record on your topic)", exact=True).check()
    page.get_by_label("Topic", exact=True).fill("charging-events")
    page.get_by_label("Brokers", exact=True).fill("kafka-1.example.com:99999, kafka-2.example.com:9092")
    page.get_by_label("Security protocol", exact=True).select_option("SASL_PLAINTEXT")
    page.get_by_label("Payload filter (JSON)", exact=True).fill("")
    _choose_event(page, "boot", "BootNotification")
    page.get_by_role("button", name="Create subscription").click()

    kafka_body = {"topic": "charging-events", "brokers": ["kafka-1.example.com:99999", "kafka-2.example.com:9092"]}
    api_errors = backoffice.api.post(
        "/public-api/notifications/v2.0",
        json={
            "via": "kafka",
            "notifications": ["BootNotification"],
            "kafka": kafka_body | {"securityProtocol": "SASL_PLAINTEXT"},
        },
    ).json()["errors"]
    assert set(api_errors) == {"kafka.brokers.0", "kafka.saslUsername", "kafka.saslPassword"}
    expect(page.locator("#f-kafka-brokers-error")).to_have_text(f"Broker 1: {api_errors['kafka.brokers.0'][0]}")
    expect(page.locator("#f-kafka-saslUsername-error")).to_have_text(api_errors["kafka.saslUsername"][0])
    expect(page.locator("#f-kafka-saslPassword-error")).to_have_text(api_errors["kafka.saslPassword"][0])
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    assert backoffice.api.get("/public-api/notifications/v2.0").json()["data"] == before


def test_subscriptions_list_reads_at_phone_width(page: Page, backoffice: Backoffice) -> None:
    backoffice.api.post(
        "/public-api/notifications/v2.0",
        json={
            "via": "webhook",
            "notifications": ["BootNotification"],
            "webhook": {"callbackUrl": backoffice.receiver.url("/hooks/phone")},
        },
    ).raise_for_status()
    sign_in(page)
    page.goto("/backoffice/subscriptions")
    expect(page.locator("table.subscriptions tbody tr").first).to_be_visible()
    shoot(page, backoffice, "subscriptions")
    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("table.subscriptions tbody tr").first).to_be_visible()
    shoot(page, backoffice, "subscriptions-phone")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert wide == [], f"wider than the phone: {wide}"
    # On a phone each row becomes a card whose cells carry their column's name.
    expect(page.locator("table.subscriptions thead")).to_be_hidden()
