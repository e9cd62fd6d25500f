"""OCPP values in the catalog's spellings: statuses, stop reasons, meter values, security events, times."""

from __future__ import annotations

import pytest

from chargewire.sources.ocpp.mapping import (
    diagnostics_status,
    hardware_status,
    meter_value,
    security_event_type,
    stop_reason,
    timestamp,
    verdict,
)

REASONS = frozenset({"local", "evdisconnected", "time_limit", "deauthorized", "other", "remote"})


@pytest.mark.parametrize(
    ("ocpp", "catalog"),
    [
        ("Local", "local"),
        ("EVDisconnected", "evdisconnected"),
        ("TimeLimitReached", "time_limit"),
        ("DeAuthorized", "deauthorized"),
        (None, "local"),
        ("SomethingNew", "other"),
    ],
)
def test_stop_reasons_map_to_the_catalog_enum_and_unknown_ones_to_other(ocpp: str | None, catalog: str) -> None:
    assert stop_reason(ocpp, REASONS) == catalog


def test_statuses_keep_the_catalog_spelling() -> None:
    assert hardware_status("SuspendedEV") == "suspendedEV"
    assert hardware_status("Faulted") == "faulted"
    assert diagnostics_status("UploadFailed") == "uploadfailed"
    assert diagnostics_status("UploadFailure") == "uploadfailed"
    assert hardware_status("Nonsense") is None


def test_energy_in_kwh_becomes_wh_and_power_loses_its_unit() -> None:
    assert meter_value(None, "kWh", 1.5) == {
        "measurand": "Energy Active Import Register",
        "value": 1500.0,
        "unit": "Wh",
    }
    assert meter_value("Power.Active.Import", "kW", 7.4) == {"measurand": "Power Active Import", "value": 7400.0}
    assert meter_value("Frequency", None, 50) is None


def test_security_events_use_the_16_names_and_unknown_types_are_left_out() -> None:
    assert security_event_type("InvalidCsmsCertificate") == "InvalidCentralSystemCertificate"
    assert security_event_type("TamperDetectionActivated") == "TamperDetectionActivated"
    assert security_event_type("VendorSpecific") is None


def test_verdict_rejects_blocked_invalid_and_expired_tags() -> None:
    assert [verdict(status) for status in ("Accepted", "ConcurrentTx", "Blocked", "Invalid", "Expired")] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "rejected",
    ]


def test_times_keep_the_charge_points_moment_with_an_offset() -> None:
    assert timestamp("2025-03-01T12:00:00+02:00") == "2025-03-01T10:00:00.000Z"
    assert timestamp("2025-03-01T10:00:00") == "2025-03-01T10:00:00.000Z"
