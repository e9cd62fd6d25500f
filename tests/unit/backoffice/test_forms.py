"""The subscription form to the API's body and back, and the API's error keys filed under form fields."""

from __future__ import annotations

from datetime import UTC, datetime

from chargewire.backoffice.forms import FORM_WIDE, blank_values, body_from_form, errors_by_field, form_values
from chargewire.models import KafkaTarget, Subscription, Via


def _subscription(**changes: object) -> Subscription:
    moment = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    fields: dict[str, object] = {
        "id": "sub_01M86FPY88D4WYTJB3MEWT2ZAV",
        "via": Via.KAFKA,
        "notifications": ("BootNotification",),
        "token_id": "tok_01M86FPY88D4WYTJB3MEWT2ZAV",
        "api_version": 2,
        "created_at": moment,
        "updated_at": moment,
        "kafka": KafkaTarget(
            topic="charging", brokers=("k1:9092", "k2:9092"), security_protocol="SASL_SSL", sasl_username="fleet"
        ),
        "filter": {"chargePointId": {"$in": [1, 2]}},
        "retry_schedule_s": (5.0, 300.0),
    }
    fields.update(changes)
    return Subscription(**fields)  # type: ignore[arg-type]


def test_a_webhook_form_becomes_the_api_body() -> None:
    body, errors = body_from_form(
        {
            "via": ["webhook"],
            "notifications": ["BootNotification", "SessionUpdateNotification"],
            "webhook.callbackUrl": [" https://example.com/hook "],
            "kafka.topic": ["ignored"],
            "enabled": ["on"],
            "description": [""],
            "filter": [""],
            "retrySchedule": ["5, 300 1800"],
        }
    )
    assert errors == {}
    assert body == {
        "via": "webhook",
        "notifications": ["BootNotification", "SessionUpdateNotification"],
        "webhook": {"callbackUrl": "https://example.com/hook"},
        "enabled": True,
        "description": None,
        "filter": None,
        "retrySchedule": [5.0, 300.0, 1800.0],
    }


def test_a_kafka_form_sends_brokers_as_a_list_and_empty_secrets_as_null() -> None:
    body, _ = body_from_form(
        {
            "via": ["kafka"],
            "kafka.topic": ["charging"],
            "kafka.brokers": ["k1:9092\r\nk2:9092, k3:9092"],
            "kafka.securityProtocol": ["SASL_SSL"],
            "kafka.saslUsername": ["fleet"],
            "kafka.saslPassword": [""],
        }
    )
    assert body["kafka"]["brokers"] == ["k1:9092", "k2:9092", "k3:9092"]
    assert body["kafka"]["saslPassword"] is None
    assert body["kafka"]["compressionCodec"] is None
    assert body["enabled"] is False
    assert "webhook" not in body


def test_unreadable_filter_and_schedule_are_reported_on_their_fields() -> None:
    body, errors = body_from_form({"via": ["webhook"], "filter": ["{nope"], "retrySchedule": ["5, soon"]})
    assert set(errors) == {"filter", "retrySchedule"}
    assert "filter" not in body
    assert "retrySchedule" not in body


def test_the_form_is_filled_from_a_subscription_without_its_secrets() -> None:
    values = form_values(_subscription())
    assert values["kafka.brokers"] == "k1:9092\nk2:9092"
    assert values["kafka.saslUsername"] == "fleet"
    assert values["kafka.saslPassword"] == ""
    assert values["kafka.clientKey"] == ""
    assert values["retrySchedule"] == "5, 300"
    assert '"$in"' in values["filter"]


def test_a_filled_form_submits_the_subscription_it_shows() -> None:
    values = form_values(_subscription())
    submitted = {
        name: value if isinstance(value, list) else [str(value) if not isinstance(value, bool) else "on"]
        for name, value in values.items()
        if value not in ("", False)
    }
    body, errors = body_from_form(submitted)
    assert errors == {}
    assert body["kafka"]["topic"] == "charging"
    assert body["kafka"]["brokers"] == ["k1:9092", "k2:9092"]
    assert body["filter"] == {"chargePointId": {"$in": [1, 2]}}
    assert body["retrySchedule"] == [5.0, 300.0]


def test_api_error_keys_land_on_the_field_that_shows_them() -> None:
    filed = errors_by_field(
        {
            "webhook.callbackUrl": ["Bad URL."],
            "kafka.brokers.1": ["Each broker must be host:port."],
            "notifications.0": ["Unknown event 'X'."],
            "retrySchedule.2": ["Too long."],
            "filter.$and.0": ["Unknown operator."],
            "kafka": ["The kafka object is required when via is kafka."],
            "token_id": ["Choose a token."],
            "(body)": ["Odd."],
        }
    )
    assert filed == {
        "webhook.callbackUrl": ["Bad URL."],
        "kafka.brokers": ["Broker 2: Each broker must be host:port."],
        "notifications": ["Event 1: Unknown event 'X'."],
        "retrySchedule": ["Delay 3: Too long."],
        "filter": ["$and.0: Unknown operator."],
        "kafka.topic": ["The kafka object is required when via is kafka."],
        "token_id": ["Choose a token."],
        FORM_WIDE: ["Odd."],
    }


def test_a_new_form_starts_with_the_api_defaults() -> None:
    values = blank_values("kafka")
    assert (values["via"], values["kafka.securityProtocol"], values["enabled"]) == ("kafka", "PLAINTEXT", True)
    assert blank_values("carrier pigeon")["via"] == "webhook"
