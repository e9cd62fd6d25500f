"""Events the OCPP tap derives from real 1.6 and 2.0.1 traffic, checked field by field and against the catalog."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from chargewire.catalog import validate
from chargewire.devtools.csms import DevCsms
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import list_charge_points
from tests.integration.sources.conftest import TapStarter, stop_taps, through_tap
from tests.support.ocpp import ChargePoint, eventually, published

T0 = "2025-03-01T10:00:00Z"
T1 = "2025-03-01T10:30:00+00:00"
T2 = "2025-03-01T11:00:00.500Z"


async def events_named(runtime: Runtime, name: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` events named `name` are stored; return them, each checked against the catalog."""
    found: list[dict[str, Any]] = await eventually(lambda: _at_least(published(runtime.database, name), count))
    for payload in found:
        validate(payload)
    return found


async def _at_least(events: Any, count: int) -> list[dict[str, Any]] | None:
    stored = await events
    return stored if len(stored) >= count else None


def by_notification(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["notification"], []).append(event)
    return grouped


async def boot_16(charge_point: ChargePoint) -> None:
    await charge_point.call(
        "BootNotification",
        {"chargePointVendor": "ABB", "chargePointModel": "Terra", "firmwareVersion": "1.2", "iccid": "8931"},
    )


async def start_16(charge_point: ChargePoint, connector: int = 1, meter_start: int = 1000) -> int:
    answer = await charge_point.call(
        "StartTransaction", {"connectorId": connector, "idTag": "TAG-1", "meterStart": meter_start, "timestamp": T0}
    )
    return int(answer[2]["transactionId"])


async def test_ocpp16_session_publishes_boot_status_start_meter_values_and_stop(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    _, charge_point, _ = await through_tap(csms, start_tap, "CP16-A")
    await boot_16(charge_point)
    await charge_point.call(
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "GroundFailure",
            "status": "Faulted",
            "timestamp": T0,
            "info": "relay",
            "vendorErrorCode": "E42",
        },
    )
    await charge_point.call("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"})
    transaction_id = await start_16(charge_point)
    meter = {
        "timestamp": T1,
        "sampledValue": [
            {"value": "2.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L1"},
            {"value": "55", "measurand": "SoC", "unit": "Percent"},
        ],
    }
    await charge_point.call("MeterValues", {"connectorId": 1, "transactionId": transaction_id, "meterValue": [meter]})
    await charge_point.call(
        "StopTransaction",
        {"transactionId": transaction_id, "meterStop": 4200, "timestamp": T2, "reason": "EVDisconnected"},
    )

    [boot] = await events_named(runtime, "BootNotification", 1)
    statuses = await events_named(runtime, "HardwareStatusNotification", 2)
    start, stop = await events_named(runtime, "SessionStartStopNotification", 2)
    [meter_values] = await events_named(runtime, "SessionMeterValuesNotification", 1)
    updates = await events_named(runtime, "SessionUpdateNotification", 3)
    [authorization] = await events_named(runtime, "authorization.changed", 1)
    [available] = await events_named(runtime, "NetworkStatusNotification", 1)

    charge_point_id = boot["chargePointId"]
    assert boot["bootNotification"] == {
        "vendor": "ABB",
        "model": "Terra",
        "firmware_version": "1.2",
        "iccid": "8931",
        "imsi": None,
        "reason": None,
        "charge_box_serial_number": None,
        "charge_point_serial_number": None,
        "meter_serial_number": None,
        "meter_type": None,
    }
    assert available == {**available, "chargePointId": charge_point_id, "networkStatus": "available"}
    assert statuses[0] == {
        "notification": "HardwareStatusNotification",
        "chargePointId": charge_point_id,
        "evseId": statuses[0]["evseId"],
        "timestamp": "2025-03-01T10:00:00.000Z",
        "hardwareStatus": "faulted",
        "errorCode": "GroundFailure",
        "info": "relay",
        "vendorErrorCode": "E42",
    }
    assert "evseId" not in statuses[1]
    assert start == {
        **start,
        "action": "start",
        "chargePointId": charge_point_id,
        "evseId": statuses[0]["evseId"],
        "idTag": "TAG-1",
        "startedAtTimestamp": "2025-03-01T10:00:00.000Z",
        "meterStart": 1000,
        "externalSessionId": str(transaction_id),
    }
    assert stop == {
        **stop,
        "action": "stop",
        "sessionId": start["sessionId"],
        "evseId": start["evseId"],
        "meterStart": 1000,
        "meterStop": 4200,
        "energyConsumed": 3200,
        "reason": "evdisconnected",
        "stoppedAtTimestamp": "2025-03-01T11:00:00.500Z",
    }
    assert meter_values["sessionId"] == start["sessionId"]
    assert meter_values["meterValues"] == [
        {
            "timestamp": "2025-03-01T10:30:00.000Z",
            "measurand": "Energy Active Import Register",
            "value": 2500.0,
            "unit": "Wh",
        },
        {"timestamp": "2025-03-01T10:30:00.000Z", "measurand": "Power Active Import", "value": 7400.0},
        {"timestamp": "2025-03-01T10:30:00.000Z", "measurand": "State Of Charge", "value": 55.0, "unit": "Percent"},
    ]
    assert [update["session"]["status"] for update in updates] == ["active", "active", "finished"]
    assert updates[1]["session"]["energy"] == 1500.0
    assert updates[2]["session"]["energy"] == 3200.0
    assert authorization == {**authorization, "idTag": "TAG-1", "status": "accepted", "chargePointId": charge_point_id}

    await charge_point.aclose()
    [_, gone] = await events_named(runtime, "NetworkStatusNotification", 2)
    assert gone["networkStatus"] == "temporarily unavailable"


async def test_ocpp16_notifications_publish_security_diagnostics_data_transfer_and_configuration(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP16-B")
    await charge_point.call(
        "SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": T0, "techInfo": "lid open"}
    )
    await charge_point.call("SecurityEventNotification", {"type": "InvalidMessages", "timestamp": T1})
    await dev_csms.send("CP16-B", '[2,"g1","GetDiagnostics",{"location":"ftp://logs.example/"}]')
    await charge_point.receive()
    await charge_point.send('[3,"g1",{"fileName":"diag.zip"}]')
    await charge_point.call("DiagnosticsStatusNotification", {"status": "UploadFailed"})
    await charge_point.call("DataTransfer", {"vendorId": "com.example", "messageId": "temp", "data": "21.5"})
    await dev_csms.send("CP16-B", '[2,"d1","DataTransfer",{"vendorId":"com.csms"}]')
    await charge_point.receive()
    await charge_point.send('[3,"d1",{"status":"Accepted"}]')
    await dev_csms.send("CP16-B", '[2,"c1","GetConfiguration",{}]')
    await charge_point.receive()
    await charge_point.send(
        '[3,"c1",{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"300"},'
        '{"key":"NumberOfConnectors","readonly":true,"value":"2"}]}]'
    )

    tamper, invalid = await events_named(runtime, "SecurityEventNotification", 2)
    [diagnostics] = await events_named(runtime, "DiagnosticsStatusNotification", 1)
    [transfer] = await events_named(runtime, "chargePoint.dataTransferReceived", 1)
    [configuration] = await events_named(runtime, "ChargePointSyncConfigurationNotification", 1)

    assert tamper == {
        **tamper,
        "type": "TamperDetectionActivated",
        "critical": True,
        "techInfo": "lid open",
        "timestamp": "2025-03-01T10:00:00.000Z",
    }
    assert invalid == {**invalid, "type": "InvalidMessages", "critical": False}
    assert diagnostics == {**diagnostics, "status": "uploadfailed", "requestId": 1}
    assert transfer == {**transfer, "vendorId": "com.example", "messageId": "temp", "data": "21.5"}
    assert configuration["configuration"] == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    ]
    await charge_point.aclose()


async def test_ocpp16_rejected_tag_callerror_and_invalid_calls_publish_no_business_event(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter, tap_metrics: CollectorRegistry
) -> None:
    dev_csms, port = csms
    dev_csms.id_tag_status = "Blocked"
    dev_csms.failing_actions.add("DataTransfer")
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")
    charge_point = await ChargePoint.connect(f"{tap}CP16-C")
    await charge_point.call("Authorize", {"idTag": "STOLEN"})
    # Fails its OCPP schema (no chargePointModel): forwarded and answered, but no event.
    await charge_point.call("BootNotification", {"chargePointVendor": "ABB"})
    # Valid, but answered with a CALLERROR.
    assert (await charge_point.call("DataTransfer", {"vendorId": "com.example"}))[0] == 4
    await charge_point.call("SecurityEventNotification", {"type": "NoSuchType", "timestamp": T0})
    await charge_point.call("Heartbeat", {})

    [authorization] = await events_named(runtime, "authorization.changed", 1)
    names = {event["notification"] for event in await published(runtime.database)}

    assert authorization == {**authorization, "idTag": "STOLEN", "status": "rejected"}
    assert names == {"NetworkStatusNotification", "authorization.changed"}
    rejected = {"charge_point": "CP16-C", "reason": "BootNotification fails its OCPP schema"}
    assert tap_metrics.get_sample_value("chargewire_ocpp_rejected_input_total", rejected) == 1
    await charge_point.aclose()


async def test_repeated_start_and_stop_publish_one_start_and_one_stop_even_with_a_new_transaction_id(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    _, charge_point, _ = await through_tap(csms, start_tap, "CP16-D")
    await start_16(charge_point)
    # The same start again (its answer lost on the way, say): the CSMS gives it a new transaction id.
    transaction_id = await start_16(charge_point)
    stop = {"transactionId": transaction_id, "meterStop": 2000, "timestamp": T2}
    await charge_point.call("StopTransaction", stop)
    await charge_point.call("StopTransaction", stop)
    await charge_point.send(orjson.dumps([2, "again", "StopTransaction", stop]).decode())
    await charge_point.receive()
    await charge_point.call("Heartbeat", {})

    sessions = await events_named(runtime, "SessionStartStopNotification", 2)
    await charge_point.aclose()
    await events_named(runtime, "NetworkStatusNotification", 2)

    assert [event["action"] for event in await published(runtime.database, "SessionStartStopNotification")] == [
        "start",
        "stop",
    ]
    assert sessions[1]["reason"] == "local"
    assert sessions[1]["sessionId"] == sessions[0]["sessionId"]
    assert sessions[1]["energyConsumed"] == 1000


async def test_ocpp201_transaction_publishes_start_meter_values_status_and_stop_from_its_readings(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    _, charge_point, _ = await through_tap(csms, start_tap, "CS201-A", subprotocols=("ocpp2.0.1",))
    await charge_point.call(
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "S-Series",
                "vendorName": "Kempower",
                "serialNumber": "SN-9",
                "modem": {"imsi": "2620"},
            },
        },
    )
    await charge_point.call(
        "StatusNotification", {"timestamp": T0, "connectorStatus": "Occupied", "evseId": 2, "connectorId": 1}
    )
    token = {"idToken": "TOKEN-201", "type": "ISO14443"}

    def reading(value: float, context: str, moment: str) -> list[dict[str, Any]]:
        return [
            {
                "timestamp": moment,
                "sampledValue": [
                    {
                        "value": value,
                        "context": context,
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "kWh"},
                    }
                ],
            }
        ]

    def transaction_event(event_type: str, seq: int, moment: str, **extra: Any) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "timestamp": moment,
            "triggerReason": "Authorized",
            "seqNo": seq,
            "evse": {"id": 2, "connectorId": 1},
            **extra,
        }

    await charge_point.call(
        "TransactionEvent",
        transaction_event(
            "Started",
            0,
            T0,
            idToken=token,
            transactionInfo={"transactionId": "tx-abc", "chargingState": "Charging"},
            meterValue=reading(10.0, "Transaction.Begin", T0),
        ),
    )
    await charge_point.call(
        "TransactionEvent",
        transaction_event(
            "Updated",
            1,
            T1,
            transactionInfo={"transactionId": "tx-abc"},
            meterValue=reading(12.5, "Sample.Periodic", T1),
        ),
    )
    await charge_point.call(
        "TransactionEvent",
        transaction_event(
            "Ended",
            2,
            T2,
            transactionInfo={"transactionId": "tx-abc", "stoppedReason": "TimeLimitReached"},
            meterValue=reading(15.25, "Transaction.End", T2),
        ),
    )
    await charge_point.call("LogStatusNotification", {"status": "UploadFailure", "requestId": 7})
    await charge_point.call("SecurityEventNotification", {"type": "InvalidCsmsCertificate", "timestamp": T0})
    await charge_point.call("DataTransfer", {"vendorId": "com.example", "data": {"temperature": [21, 22]}})

    [boot] = await events_named(runtime, "BootNotification", 1)
    start, stop = await events_named(runtime, "SessionStartStopNotification", 2)
    statuses = await events_named(runtime, "HardwareStatusNotification", 2)
    meter_values = await events_named(runtime, "SessionMeterValuesNotification", 3)
    [authorization] = await events_named(runtime, "authorization.changed", 1)
    [log_status] = await events_named(runtime, "DiagnosticsStatusNotification", 1)
    [security] = await events_named(runtime, "SecurityEventNotification", 1)
    [transfer] = await events_named(runtime, "chargePoint.dataTransferReceived", 1)

    assert boot["bootNotification"] == {
        **boot["bootNotification"],
        "vendor": "Kempower",
        "model": "S-Series",
        "charge_point_serial_number": "SN-9",
        "imsi": "2620",
        "reason": "PowerUp",
    }
    assert start == {
        **start,
        "externalSessionId": "tx-abc",
        "meterStart": 10000,
        "idTag": "TOKEN-201",
        "startedAtTimestamp": "2025-03-01T10:00:00.000Z",
        "evseId": statuses[0]["evseId"],
    }
    assert stop == {
        **stop,
        "sessionId": start["sessionId"],
        "meterStart": 10000,
        "meterStop": 15250,
        "energyConsumed": 5250,
        "reason": "time_limit",
        "stoppedAtTimestamp": "2025-03-01T11:00:00.500Z",
    }
    assert [status["hardwareStatus"] for status in statuses] == ["preparing", "charging"]
    assert meter_values[1]["meterValues"] == [
        {
            "timestamp": "2025-03-01T10:30:00.000Z",
            "measurand": "Energy Active Import Register",
            "value": 12500.0,
            "unit": "Wh",
        }
    ]
    assert authorization == {**authorization, "idTag": "TOKEN-201", "status": "accepted"}
    assert log_status == {**log_status, "status": "uploadfailed", "requestId": 7}
    assert security == {**security, "type": "InvalidCentralSystemCertificate", "critical": False}
    assert transfer["data"] == '{"temperature":[21,22]}'
    await charge_point.aclose()


async def test_tap_restarted_mid_session_publishes_the_right_meter_values_and_stop(
    runtime: Runtime,
    csms: tuple[DevCsms, int],
    start_tap: TapStarter,
    running_taps: list[tuple[asyncio.Event, asyncio.Task[None]]],
) -> None:
    _, port = csms
    upstream = f"ws://127.0.0.1:{port}/ocpp/"
    first_tap = await start_tap(upstream)
    charge_point = await ChargePoint.connect(f"{first_tap}CP16-R")
    await boot_16(charge_point)
    transaction_id = await start_16(charge_point, connector=2, meter_start=500)
    [start] = await events_named(runtime, "SessionStartStopNotification", 1)
    await stop_taps(running_taps)
    await charge_point.connection.wait_closed()

    second_tap = await start_tap(upstream)
    again = await ChargePoint.connect(f"{second_tap}CP16-R")
    meter = {"timestamp": T1, "sampledValue": [{"value": "1500"}]}
    await again.call("MeterValues", {"connectorId": 2, "transactionId": transaction_id, "meterValue": [meter]})
    await again.call("StopTransaction", {"transactionId": transaction_id, "meterStop": 2500, "timestamp": T2})

    _, stop = await events_named(runtime, "SessionStartStopNotification", 2)
    [meter_values] = await events_named(runtime, "SessionMeterValuesNotification", 1)
    boots = await published(runtime.database, "BootNotification")

    assert stop == {
        **stop,
        "sessionId": start["sessionId"],
        "evseId": start["evseId"],
        "meterStart": 500,
        "meterStop": 2500,
        "energyConsumed": 2000,
        "chargePointId": start["chargePointId"],
    }
    assert meter_values == {**meter_values, "sessionId": start["sessionId"], "evseId": start["evseId"]}
    assert len(boots) == 1
    await again.aclose()


async def test_network_status_follows_missed_heartbeats_and_a_long_absence(
    runtime: Runtime, start_tap: TapStarter
) -> None:
    dev_csms = DevCsms(heartbeat_interval_s=1)
    async with await dev_csms.start() as server:
        tap = await start_tap(
            f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp/",
            ocpp_missed_heartbeats=1,
            ocpp_long_term_unavailable_s=0.5,
        )
        charge_point = await ChargePoint.connect(f"{tap}CP16-NET")
        await boot_16(charge_point)
        await events_named(runtime, "NetworkStatusNotification", 2)
        await charge_point.call("Heartbeat", {})
        await charge_point.aclose()

        statuses = await events_named(runtime, "NetworkStatusNotification", 5)

    assert [status["networkStatus"] for status in statuses] == [
        "available",
        "temporarily unavailable",
        "available",
        "temporarily unavailable",
        "long-term unavailable",
    ]


async def test_charge_points_are_listed_with_their_ids_version_state_and_last_message(
    runtime: Runtime,
    csms: tuple[DevCsms, int],
    start_tap: TapStarter,
    running_taps: list[tuple[asyncio.Event, asyncio.Task[None]]],
) -> None:
    _, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")
    first = await ChargePoint.connect(f"{tap}CP-LIST-A")
    second = await ChargePoint.connect(f"{tap}CP-LIST-B", subprotocols=("ocpp2.0.1",))
    await boot_16(first)
    [boot] = await events_named(runtime, "BootNotification", 1)
    await second.aclose()
    await events_named(runtime, "NetworkStatusNotification", 3)
    await stop_taps(running_taps)

    listed = {record.identity: record for record in await list_charge_points(runtime.database)}

    assert listed["CP-LIST-A"].charge_point_id == boot["chargePointId"]
    assert listed["CP-LIST-A"].version == "ocpp1.6"
    assert listed["CP-LIST-A"].last_message_at is not None
    assert listed["CP-LIST-B"].version == "ocpp2.0.1"
    assert not listed["CP-LIST-B"].connected


async def test_fragmented_message_is_relayed_whole_and_read_for_events(
    runtime: Runtime, csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP16-FRAG")
    text = orjson.dumps(
        [2, "f-1", "BootNotification", {"chargePointVendor": "Fragmented", "chargePointModel": "F1"}]
    ).decode()

    await charge_point.connection.send([text[:10], text[10:25], text[25:]])
    answer = orjson.loads(await charge_point.receive())

    [boot] = await events_named(runtime, "BootNotification", 1)
    assert dev_csms.frames_from("CP16-FRAG") == [text]
    assert answer[:2] == [3, "f-1"]
    assert boot["bootNotification"]["vendor"] == "Fragmented"
    await charge_point.aclose()
