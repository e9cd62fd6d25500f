"""Resend failed notifications, driven by the contract-only client: 202, then 409 inside the window; 404; 422."""

from __future__ import annotations

import pytest
from notifications_api_client import EVENTS, NotificationsClient, check_error, webhook_body


async def test_resend_is_accepted_then_refused_inside_the_window(admin: NotificationsClient) -> None:
    created = await admin.subscribe(webhook_body())
    first = await admin.resend(created["id"], {"notifications": EVENTS[:1]})
    assert first.status_code == 202
    second = await admin.resend(created["id"], {"notifications": EVENTS[:1]})
    assert second.status_code == 409
    check_error(second)


async def test_resend_window_is_per_subscription(admin: NotificationsClient) -> None:
    one = await admin.subscribe(webhook_body())
    two = await admin.subscribe(webhook_body())
    assert (await admin.resend(one["id"], {"notifications": EVENTS[:1]})).status_code == 202
    assert (await admin.resend(two["id"], {"notifications": EVENTS[:1]})).status_code == 202


async def test_resend_with_a_time_window_is_accepted(admin: NotificationsClient) -> None:
    created = await admin.subscribe(webhook_body())
    body = {"notifications": EVENTS[:2], "startTime": "2025-01-01T00:00:00Z", "endTime": "2025-01-02T00:00:00+01:00"}
    assert (await admin.resend(created["id"], body)).status_code == 202


async def test_resend_of_a_missing_subscription_is_404(admin: NotificationsClient) -> None:
    response = await admin.resend("sub_01JD3Q9W8T2X6Z4C5V7B9N1M3K", {"notifications": EVENTS[:1]})
    assert response.status_code == 404
    check_error(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "notifications"),
        ({"notifications": []}, "notifications"),
        ({"notifications": ["NoSuchEvent"]}, "notifications.0"),
        ({"notifications": EVENTS[:1], "startTime": "yesterday"}, "startTime"),
        (
            {"notifications": EVENTS[:1], "startTime": "2025-02-01T00:00:00Z", "endTime": "2025-01-01T00:00:00Z"},
            "endTime",
        ),
    ],
    ids=["no notifications", "empty notifications", "unknown event", "bad startTime", "end before start"],
)
async def test_invalid_resend_is_422_naming_the_field(
    admin: NotificationsClient, body: dict[str, object], field: str
) -> None:
    created = await admin.subscribe(webhook_body())
    response = await admin.resend(created["id"], body)
    assert response.status_code == 422
    assert field in check_error(response)["errors"]
    # A refused request does not use up the window.
    assert (await admin.resend(created["id"], {"notifications": EVENTS[:1]})).status_code == 202


async def test_resend_of_a_disabled_subscription_is_409(admin: NotificationsClient) -> None:
    # The contract has no field to disable a subscription; chargewire's `enabled` extension does it.
    created = await admin.subscribe({**webhook_body(), "enabled": False})
    response = await admin.resend(created["id"], {"notifications": EVENTS[:1]})
    assert response.status_code == 409
    check_error(response)
