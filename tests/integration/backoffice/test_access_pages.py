"""Signing in and out, CSRF, API tokens and the event catalog, in Chromium against a real server."""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import Page, expect

from chargewire.catalog import load_event_types
from tests.conftest import bearer
from tests.integration.backoffice.conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, Backoffice, shoot, sign_in

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_operator_signs_in_with_the_keyboard_and_out_again(page: Page, backoffice: Backoffice) -> None:
    page.goto("/backoffice/subscriptions")
    expect(page).to_have_url(re.compile(r"/backoffice/sign-in\?next=%2Fbackoffice%2Fsubscriptions$"))
    shoot(page, backoffice, "sign-in")
    page.get_by_label("Email", exact=True).fill(OPERATOR_EMAIL)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or password is not right.")

    # Keyboard only: the email field has focus, Tab moves to the password, Enter submits.
    page.get_by_label("Email", exact=True).fill("")
    page.get_by_label("Email", exact=True).focus()
    page.keyboard.type(OPERATOR_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(OPERATOR_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Subscriptions")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/backoffice/subscriptions$"))
    for cookie in page.context.cookies():  # the session, and the mark of a client that signed in before
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/backoffice")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="chargewire Notifications")).to_be_focused()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/backoffice/overview")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.request.get("/backoffice/api/overview").status == 401


def test_a_form_posted_without_the_session_csrf_token_is_refused(backoffice: Backoffice) -> None:
    before = backoffice.api.get("/public-api/notifications/v2.0").json()["data"]
    with httpx.Client(base_url=backoffice.base_url, follow_redirects=False) as browser:
        token = _CSRF.search(browser.get("/backoffice/sign-in").text)
        assert token is not None
        assert (
            browser.post(
                "/backoffice/sign-in", data={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD, "csrf_token": "x"}
            ).status_code
            == 403
        )
        signed_in = browser.post(
            "/backoffice/sign-in",
            data={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD, "csrf_token": token[1]},
        )
        assert signed_in.status_code == 303
        # Signing in replaces the token, so the one from before is worthless now.
        token = _CSRF.search(browser.get("/backoffice/subscriptions/new").text)
        assert token is not None
        form = {
            "token_id": backoffice.owner_token_id,
            "via": "webhook",
            "webhook.callbackUrl": backoffice.receiver.url("/hooks/csrf"),
            "notifications": "BootNotification",
            "enabled": "on",
        }
        assert browser.post("/backoffice/subscriptions/new", data=form).status_code == 403
        assert browser.post("/backoffice/subscriptions/new", data=form | {"csrf_token": "forged"}).status_code == 403
        cross_site = browser.post(
            "/backoffice/subscriptions/new",
            data=form | {"csrf_token": token[1]},
            headers={"Origin": "http://evil.example"},
        )
        assert cross_site.status_code == 403
        assert backoffice.api.get("/public-api/notifications/v2.0").json()["data"] == before
        created = browser.post("/backoffice/subscriptions/new", data=form | {"csrf_token": token[1]})
        assert created.status_code == 200
        assert len(backoffice.api.get("/public-api/notifications/v2.0").json()["data"]) == len(before) + 1


def test_operator_creates_a_token_shown_once_and_revokes_it(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="API tokens").click()
    page.get_by_label("Name", exact=True).fill("billing-app")
    page.get_by_role("checkbox", name="notifications:manage").check()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token created")).to_be_visible()
    text = page.locator("#token-text").inner_text()
    shoot(page, backoffice, "token-created")
    listed = httpx.get(f"{backoffice.base_url}/public-api/notifications/v2.0", headers=bearer(text))
    assert listed.status_code == 200

    page.get_by_role("link", name="Back to tokens").click()
    expect(page.locator("table.tokens")).not_to_contain_text(text)
    shoot(page, backoffice, "tokens")
    page.get_by_role("link", name="Revoke token billing-app").click()
    expect(page.get_by_role("heading", name="Revoke this token?")).to_be_visible()
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    refused = httpx.get(f"{backoffice.base_url}/public-api/notifications/v2.0", headers=bearer(text))
    assert refused.status_code == 401


def test_token_form_errors_appear_next_to_their_fields(page: Page, backoffice: Backoffice) -> None:
    sign_in(page)
    page.goto("/backoffice/tokens")
    page.get_by_label("Name", exact=True).fill("reporting")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#f-scopes-error")).to_have_text("At least one scope is required.")
    expect(page.get_by_label("Name", exact=True)).to_have_value("reporting")
    page.get_by_label("Name", exact=True).fill(" ")
    page.get_by_role("checkbox", name="admin").check()
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#f-name-error")).to_have_text("The name field is required.")


def test_catalog_shows_every_event_with_its_schema_and_example(page: Page, backoffice: Backoffice) -> None:
    event_types = load_event_types()
    sign_in(page)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Event catalog").click()
    expect(page.locator("[data-catalog-item]")).to_have_count(len(event_types))
    expect(page.locator("[data-catalog-item] .badge-deprecated")).to_have_count(
        sum(event_type.deprecated for event_type in event_types.values())
    )
    boot = page.locator("article#BootNotification")
    boot.get_by_text("Example").click()
    assert (
        json.loads(boot.locator("details").nth(1).locator("pre").inner_text())
        == event_types["BootNotification"].example
    )
    boot.get_by_text("Schema").click()
    assert (
        json.loads(boot.locator("details").nth(0).locator("pre").inner_text()) == event_types["BootNotification"].schema
    )
    shoot(page, backoffice, "catalog", full_page=False)
    page.get_by_label("Search events", exact=True).fill("tariff")
    expect(page.locator("article#TariffChangedNotification")).to_be_visible()
    expect(boot).to_be_hidden()
