"""Retention settings are checked at start against each other and against retries and auto-disable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chargewire.config import Settings


def test_the_default_retention_settings_are_accepted() -> None:
    settings = Settings(database_url="sqlite://")

    assert (settings.retention_delivered_days, settings.retention_failed_days) == (30, 90)


def test_a_delivered_retention_shorter_than_the_retry_schedule_is_refused_naming_the_setting() -> None:
    with pytest.raises(
        ValidationError, match=r"CHARGEWIRE_RETENTION_DELIVERED_DAYS is 1 days; it must be at least 1\.38"
    ):
        Settings(database_url="sqlite://", retention_delivered_days=1)


def test_failed_deliveries_kept_less_long_than_delivered_history_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match=r"CHARGEWIRE_RETENTION_FAILED_DAYS is 20 days; it must be at least 30"):
        Settings(database_url="sqlite://", retention_failed_days=20)


def test_a_resend_window_shorter_than_auto_disables_failing_period_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"CHARGEWIRE_RETENTION_FAILED_DAYS is 7 days; it must be at least 11\.38"
    ):
        Settings(
            database_url="sqlite://",
            retention_delivered_days=2,
            retention_failed_days=7,
            disable_after_failing_s=10 * 24 * 3600,
        )


def test_a_shorter_retry_schedule_allows_a_shorter_retention() -> None:
    settings = Settings(
        database_url="sqlite://", retry_schedule_s=[0, 60], retention_delivered_days=1, retention_failed_days=6
    )

    assert settings.retention_delivered_days == 1
