"""Pure translations from OCPP values to the catalog's spellings: statuses, reasons, measurands, units, times.

Each function returns None for a value the catalog has no spelling for; the caller then leaves the field
out or publishes nothing, as its mapping says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargewire.clock import utcnow

# StatusNotification (1.6) statuses and TransactionEvent (2.0.1) charging states, as HardwareStatus.
_HARDWARE_STATUSES = {
    "Available": "available",
    "Preparing": "preparing",
    "Charging": "charging",
    "SuspendedEV": "suspendedEV",
    "SuspendedEVSE": "suspendedEVSE",
    "Finishing": "finishing",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
    # 2.0.1 connector status: a car is plugged in; TransactionEvent.chargingState says more later.
    "Occupied": "preparing",
    "EVConnected": "preparing",
    "Idle": "preparing",
}

# 1.6 Reason and 2.0.1 ReasonEnumType values whose lower-cased spelling the catalog does not use.
_STOP_REASONS = {
    "TimeLimitReached": "time_limit",
    "DeAuthorized": "deauthorized",
    "ReqEnergyTransfer": "other",
    "Timeout": "timeout",
}

_MEASURANDS = {
    "Energy.Active.Import.Register": "Energy Active Import Register",
    "SoC": "State Of Charge",
    "Current.Import": "Current Import",
    "Current.Offered": "Current Offered",
    "Voltage": "Voltage",
    "Power.Active.Import": "Power Active Import",
    "Temperature": "Temperature",
    "Power.Offered": "Power Offered",
}
DEFAULT_MEASURAND = "Energy.Active.Import.Register"

# OCPP unit -> (catalog unit or None to leave it out, factor). The catalog has no unit for power: power
# is given in W with no unit (kW converted), as the catalog's own examples do.
_UNITS: dict[str, tuple[str | None, float]] = {
    "Wh": ("Wh", 1.0),
    "kWh": ("Wh", 1000.0),
    "A": ("A", 1.0),
    "V": ("V", 1.0),
    "Percent": ("Percent", 1.0),
    "Celsius": ("Celsius", 1.0),
    "Celcius": ("Celsius", 1.0),  # the 1.6 schema's own spelling
    "W": (None, 1.0),
    "kW": (None, 1000.0),
}

_DIAGNOSTICS_STATUSES = {
    # 1.6 DiagnosticsStatusNotification
    "Idle": "idle",
    "Uploaded": "uploaded",
    "UploadFailed": "uploadfailed",
    "Uploading": "uploading",
    # 2.0.1 LogStatusNotification: every failure is an upload that failed, a cancelled upload is idle again.
    "UploadFailure": "uploadfailed",
    "BadMessage": "uploadfailed",
    "NotSupportedOperation": "uploadfailed",
    "PermissionDenied": "uploadfailed",
    "AcceptedCanceled": "idle",
}

# The 1.6 security whitepaper's (and 2.0.1 appendix's) event types marked critical.
CRITICAL_SECURITY_EVENTS = frozenset(
    {
        "FirmwareUpdated",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "MemoryExhaustion",
        "TamperDetectionActivated",
    }
)
# 2.0.1 names of security events whose 1.6 name is the catalog's.
_SECURITY_EVENTS_201 = {
    "FailedToAuthenticateAtCsms": "FailedToAuthenticateAtCentralSystem",
    "CsmsFailedToAuthenticate": "CentralSystemFailedToAuthenticate",
    "InvalidCsmsCertificate": "InvalidCentralSystemCertificate",
}
_SECURITY_EVENTS = frozenset(
    {
        *CRITICAL_SECURITY_EVENTS,
        "FailedToAuthenticateAtCentralSystem",
        "CentralSystemFailedToAuthenticate",
        "ReconfigurationOfSecurityParameters",
        "InvalidMessages",
        "AttemptedReplayAttacks",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
    }
)
_ACCEPTED_ID_TAG_STATUSES = frozenset({"Accepted", "ConcurrentTx"})


def hardware_status(status: str) -> str | None:
    """The catalog's hardware status for an OCPP connector status or charging state."""
    return _HARDWARE_STATUSES.get(status)


def stop_reason(reason: str | None, stop_reasons: frozenset[str]) -> str:
    """The catalog's stop reason: lower-cased OCPP, a few renamed, `local` when none given (the 1.6 default)."""
    if reason is None:
        return "local"
    mapped = _STOP_REASONS.get(reason, reason.lower())
    return mapped if mapped in stop_reasons else "other"


def diagnostics_status(status: str) -> str | None:
    """The catalog's diagnostics status for a 1.6 diagnostics or 2.0.1 log upload status."""
    return _DIAGNOSTICS_STATUSES.get(status)


def security_event_type(event_type: str) -> str | None:
    """The catalog's (1.6) name of a security event type, or None for a type the catalog does not list."""
    name = _SECURITY_EVENTS_201.get(event_type, event_type)
    return name if name in _SECURITY_EVENTS else None


def verdict(id_tag_status: str) -> str:
    """`accepted` or `rejected`: the CSMS's verdict on an id tag (Blocked, Invalid, Expired and the like)."""
    return "accepted" if id_tag_status in _ACCEPTED_ID_TAG_STATUSES else "rejected"


def meter_value(measurand: str | None, unit: str | None, value: float) -> dict[str, Any] | None:
    """`{measurand, value, unit}` in the catalog's names and units, or None when it has no name for it."""
    name = _MEASURANDS.get(measurand or DEFAULT_MEASURAND)
    target = _UNITS.get(unit or "Wh")
    if name is None or target is None:
        return None
    catalog_unit, factor = target
    sample: dict[str, Any] = {"measurand": name, "value": value * factor}
    if catalog_unit is not None:
        sample["unit"] = catalog_unit
    return sample


def timestamp(value: object) -> str:
    """An RFC 3339 time with an offset: the charge point's own time, read as UTC when it has no offset."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = utcnow()
    else:
        moment = utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    """The tap's own time, for fields no OCPP message carries (`lastUpdatedAt`, network status)."""
    return timestamp(None)
