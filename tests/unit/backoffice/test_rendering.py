"""Small page helpers: relative times, field ids, bodies shown indented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.backoffice.rendering import ago, field_id, pretty_body, word_breaks

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_relative_times_read_naturally() -> None:
    assert ago(None) == "never"
    assert ago(NOW - timedelta(seconds=10), NOW) == "just now"
    assert ago(NOW - timedelta(minutes=4, seconds=30), NOW) == "4 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=2), NOW) == "2 d ago"
    assert ago(NOW + timedelta(minutes=5), NOW) == "in 5 min"


def test_field_ids_follow_the_api_field_names() -> None:
    assert field_id("kafka.brokers") == "f-kafka-brokers"
    assert field_id("token_id") == "f-token-id"


def test_json_bodies_are_indented_and_others_shown_as_they_came() -> None:
    assert pretty_body(b'{"a":1}') == '{\n  "a": 1\n}'
    assert pretty_body("ok") == "ok"
    assert pretty_body(None) == ""


def test_word_breaks_lets_an_event_name_wrap_between_words_only() -> None:
    assert str(word_breaks("ChargePointSyncConfigurationNotification")) == (
        "Charge<wbr>Point<wbr>Sync<wbr>Configuration<wbr>Notification"
    )
    assert str(word_breaks("user.subscription.changed")) == "user.<wbr>subscription.<wbr>changed"
    assert str(word_breaks("<b>")) == "&lt;b&gt;"
