"""The deprecated v1.0 API (webhooks only), driven by the contract-only client: its own shapes, page numbers."""

from __future__ import annotations

from notifications_api_client import CALLBACK, EVENTS, V1, NotificationsClient, check_error, kafka_body


async def test_v1_webhook_is_created_unwrapped_then_read_updated_and_deleted(admin: NotificationsClient) -> None:
    created = await admin.subscribe_v1(CALLBACK, EVENTS[:2])
    assert created["callbackUrl"] == CALLBACK
    assert created["notifications"] == EVENTS[:2]

    assert (await admin.read_v1(created["webhookId"]))["callbackUrl"] == CALLBACK
    updated = await admin.update_v1(created["webhookId"], "http://127.0.0.1:11/v1", EVENTS[2:])
    assert updated == {
        "webhookId": created["webhookId"],
        "notifications": EVENTS[2:],
        "callbackUrl": "http://127.0.0.1:11/v1",
    }

    await admin.unsubscribe_v1(created["webhookId"])
    response = await admin.call("GET", f"{V1}/{created['webhookId']}")
    assert response.status_code == 404
    check_error(response)


async def test_v1_webhook_is_the_same_subscription_in_v2(admin: NotificationsClient) -> None:
    created = await admin.subscribe_v1(CALLBACK, EVENTS[:1])
    assert (await admin.read(created["webhookId"]))["webhook"] == {"callbackUrl": CALLBACK}


async def test_v1_lists_by_page_number_with_laravel_meta(admin: NotificationsClient) -> None:
    ids = [(await admin.subscribe_v1(CALLBACK, EVENTS[:1]))["webhookId"] for _ in range(25)]

    first = await admin.list_v1_page(f"{V1}?per_page=10")
    meta = first["meta"]
    assert (meta["current_page"], meta["from"], meta["to"], meta["last_page"], meta["total"]) == (1, 1, 10, 3, 25)
    assert meta["per_page"] == 10
    assert meta["path"].endswith(V1)
    assert [link["label"] for link in meta["links"]] == ["&laquo; Previous", "1", "2", "3", "Next &raquo;"]
    assert [link["active"] for link in meta["links"]] == [False, True, False, False, False]
    assert first["links"]["prev"] is None

    listed, url = [], first["links"]["first"]
    while url:
        page = await admin.list_v1_page(url)
        listed += [item["webhookId"] for item in page["data"]]
        url = page["links"]["next"]
    assert listed == ids
    assert page["meta"]["current_page"] == 3
    assert (page["meta"]["from"], page["meta"]["to"]) == (21, 25)
    assert page["links"]["last"] == first["links"]["last"]


async def test_v1_page_past_the_end_is_empty_with_null_from_and_to(admin: NotificationsClient) -> None:
    await admin.subscribe_v1(CALLBACK, EVENTS[:1])
    page = await admin.list_v1_page(f"{V1}?page=5")
    assert page["data"] == []
    assert (page["meta"]["from"], page["meta"]["to"], page["meta"]["total"]) == (None, None, 1)


async def test_v1_does_not_show_kafka_subscriptions(admin: NotificationsClient) -> None:
    kafka = await admin.subscribe(kafka_body())
    webhook = await admin.subscribe_v1(CALLBACK, EVENTS[:1])
    page = await admin.list_v1_page(V1)
    assert [item["webhookId"] for item in page["data"]] == [webhook["webhookId"]]
    response = await admin.call("GET", f"{V1}/{kafka['id']}")
    assert response.status_code == 404
    check_error(response)


async def test_v1_invalid_body_is_422_naming_v1_fields(admin: NotificationsClient) -> None:
    bad_url = await admin.call("POST", V1, {"callbackUrl": "mailto:someone@example.net", "notifications": EVENTS[:1]})
    assert bad_url.status_code == 422
    assert "callbackUrl" in check_error(bad_url)["errors"]
    no_events = await admin.call("POST", V1, {"callbackUrl": CALLBACK})
    assert no_events.status_code == 422
    assert "notifications" in check_error(no_events)["errors"]
    unknown = await admin.call("POST", V1, {"callbackUrl": CALLBACK, "notifications": ["Nope"]})
    assert "notifications.0" in check_error(unknown)["errors"]


async def test_v1_without_token_is_401(admin: NotificationsClient) -> None:
    response = await admin.http.get(V1)
    assert response.status_code == 401
    check_error(response)
