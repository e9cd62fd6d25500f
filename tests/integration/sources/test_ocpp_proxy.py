"""The OCPP tap as a proxy: real charge point and CSMS WebSockets on loopback, frames compared byte for byte."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargewire.devtools.certificates import generate_tls_files
from chargewire.devtools.csms import DevCsms
from tests.integration.sources.conftest import TapStarter, free_port, through_tap
from tests.support.ocpp import ChargePoint, eventually

# Frames as a charge point in the field may send them: odd spacing and key order, non-ASCII text, escapes,
# numbers in forms a re-encoder would change, an unknown action, vendor data, OCPP 2.1 frame types and
# frames that are not OCPP-J at all.
FIELD_FRAMES = [
    '[2, "1", "BootNotification", {"chargePointVendor": "Ünïcode", "chargePointModel":"M\\u00e9"}]',
    '[2,"2","Heartbeat",{}]',
    '[2,"3","FrobnicateConnector",{"b":1,"a":1.50,"c":1e3}]',
    '[2,"4","DataTransfer",{"vendorId":"com.example","messageId":"x","data":"{\\"k\\": [1, 2]}"}]',
    '[6,"5","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"2025-01-01T00:00:00Z","data":[]}]',
    "not json at all",
    '[2,"6"]',
    '{"an": "object"}',
    '[2,"7","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"12.0"}]}]}]   ',
]


async def test_frames_reach_the_csms_and_the_charge_point_byte_identical_in_order(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP-RAW")
    for frame in FIELD_FRAMES:
        await charge_point.send(frame)
    answered = [frame for frame in FIELD_FRAMES if frame.startswith("[2,") or frame.startswith("[2, ")]
    await eventually(lambda: len(dev_csms.frames_from("CP-RAW")) == len(FIELD_FRAMES))
    from_csms = ['[2,"c-1","GetConfiguration",{ "key" : ["HeartbeatInterval"] }]', '[2,"c-2","Vendor.Thing",{}]']
    for frame in from_csms:
        await dev_csms.send("CP-RAW", frame)
    for _ in range(len(answered) - 1 + len(from_csms)):  # "[2,\"6\"]" is malformed and gets no answer
        await charge_point.receive()

    assert dev_csms.frames_from("CP-RAW") == charge_point.sent == FIELD_FRAMES
    assert charge_point.received[-2:] == from_csms
    assert charge_point.received[0].startswith('[3,"1",')
    await charge_point.aclose()


async def test_charge_point_gets_the_subprotocol_the_csms_chose_from_its_offer_in_order(
    start_tap: TapStarter,
) -> None:
    dev_csms = DevCsms(subprotocols=("ocpp2.0.1",))
    async with await dev_csms.start() as server:
        tap = await start_tap(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp/")
        charge_point = await ChargePoint.connect(f"{tap}CP-201", subprotocols=("ocpp2.1", "ocpp1.6", "ocpp2.0.1"))

        assert charge_point.connection.subprotocol == "ocpp2.0.1"
        assert dev_csms.handshakes[-1].headers["Sec-WebSocket-Protocol"] == "ocpp2.1, ocpp1.6, ocpp2.0.1"
        assert dev_csms.handshakes[-1].path == "/ocpp/CP-201"
        await charge_point.aclose()


async def test_basic_auth_reaches_the_csms_and_its_refusal_reaches_the_charge_point(start_tap: TapStarter) -> None:
    credentials = "Basic Q1AtQVVUSDpzZWNyZXQtcGFzc3dvcmQ="
    dev_csms = DevCsms(required_authorization=credentials)
    async with await dev_csms.start() as server:
        tap = await start_tap(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp/")
        accepted = await ChargePoint.connect(f"{tap}CP-AUTH", headers={"Authorization": credentials})
        with pytest.raises(InvalidStatus) as refused:
            await ChargePoint.connect(f"{tap}CP-AUTH", headers={"Authorization": "Basic d3Jvbmc6d3Jvbmc="})

        assert refused.value.response.status_code == 401
        assert dev_csms.handshakes[0].headers["Authorization"] == credentials
        assert (await accepted.call("Heartbeat", {}))[0] == 3
        await accepted.aclose()


async def test_charge_point_is_refused_when_the_csms_is_down_or_refuses_it(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, port = csms
    dev_csms.refused.add("CP-UNKNOWN")
    down_tap = await start_tap(f"ws://127.0.0.1:{free_port()}/ocpp/")
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")

    with pytest.raises(InvalidStatus) as unreachable:
        await ChargePoint.connect(f"{down_tap}CP-1")
    with pytest.raises(InvalidStatus) as refused:
        await ChargePoint.connect(f"{tap}CP-UNKNOWN")
    with pytest.raises(InvalidStatus) as wrong_path:
        await ChargePoint.connect(tap.replace("/ocpp/", "/other/") + "CP-1")

    assert unreachable.value.response.status_code == 502
    assert refused.value.response.status_code == 403
    assert wrong_path.value.response.status_code == 404


async def test_charge_point_reconnecting_with_its_identity_replaces_its_old_connection(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, first, tap = await through_tap(csms, start_tap, "CP-TWICE")
    first_upstream = await eventually(lambda: dev_csms.connections.get("CP-TWICE"))
    second = await ChargePoint.connect(f"{tap}CP-TWICE")

    await first.connection.wait_closed()
    await first_upstream.wait_closed()
    assert first.connection.close_code == 1000
    assert (await second.call("Heartbeat", {}))[0] == 3
    assert dev_csms.connections["CP-TWICE"] is not first_upstream
    await second.aclose()


async def test_oversized_frame_closes_the_charge_point_and_the_csms_with_1009(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, tap = await through_tap(csms, start_tap, "CP-BIG", ocpp_max_frame_bytes=2048)
    upstream = await eventually(lambda: dev_csms.connections.get("CP-BIG"))
    other = await ChargePoint.connect(f"{tap}CP-OTHER")

    await charge_point.connection.send('[2,"1","DataTransfer",{"vendorId":"' + "x" * 4096 + '"}]')
    await charge_point.connection.wait_closed()
    await upstream.wait_closed()

    assert charge_point.connection.close_code == 1009
    assert upstream.close_code == 1009
    assert (await other.call("Heartbeat", {}))[0] == 3
    await other.aclose()


async def test_csms_closing_closes_the_charge_point_with_the_same_code(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP-CLOSED")
    upstream = await eventually(lambda: dev_csms.connections.get("CP-CLOSED"))

    await upstream.close(4001, "deregistered")
    with pytest.raises(ConnectionClosed):
        await charge_point.connection.recv()

    assert charge_point.connection.close_code == 4001
    assert charge_point.connection.close_reason == "deregistered"


async def test_tap_answers_pings_and_serves_its_metrics(csms: tuple[DevCsms, int], start_tap: TapStarter) -> None:
    _, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/")
    charge_point = await ChargePoint.connect(f"{tap}CP-PING")
    await charge_point.send("garbage")

    pong = await charge_point.connection.ping()
    await asyncio.wait_for(pong, 5)

    async def rejected_count() -> str | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(tap.replace("ws://", "http://").replace("/ocpp/", "/metrics"))
        return response.text if 'reason="not json"' in response.text else None

    metrics = await eventually(rejected_count)

    assert 'chargewire_ocpp_rejected_input_total{charge_point="CP-PING",reason="not json"} 1.0' in metrics
    await charge_point.aclose()


def pem_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A certificate for localhost and 127.0.0.1, its key, and the CA that signed it, as PEM files."""
    files = generate_tls_files(tmp_path / "tls")
    key, certificate, _ = pkcs12.load_key_and_certificates(
        files.server_keystore.read_bytes(), files.keystore_password.encode()
    )
    assert key is not None
    assert certificate is not None
    (tmp_path / "server.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "server.pem", tmp_path / "server.key", files.ca_pem


async def test_charge_points_connect_over_tls_when_a_certificate_is_configured(
    csms: tuple[DevCsms, int], start_tap: TapStarter, tmp_path: Path
) -> None:
    _, port = csms
    certificate, key, ca = pem_files(tmp_path)
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/", ocpp_tls_cert_file=certificate, ocpp_tls_key_file=key)

    charge_point = await ChargePoint.connect(f"{tap}CP-TLS", ssl=ssl.create_default_context(cafile=str(ca)))

    assert tap.startswith("wss://")
    assert (await charge_point.call("Heartbeat", {}))[0] == 3
    await charge_point.aclose()


async def test_tap_reaches_a_wss_csms_it_verifies_with_the_configured_ca(start_tap: TapStarter, tmp_path: Path) -> None:
    certificate, key, ca = pem_files(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate, key)
    dev_csms = DevCsms()
    async with await dev_csms.start(tls=server_tls) as server:
        upstream = f"wss://localhost:{server.sockets[0].getsockname()[1]}/ocpp/"
        trusting = await start_tap(upstream, ocpp_upstream_ca_file=ca)
        untrusting = await start_tap(upstream)

        charge_point = await ChargePoint.connect(f"{trusting}CP-WSS")
        with pytest.raises(InvalidStatus) as refused:
            await ChargePoint.connect(f"{untrusting}CP-WSS-2")

        assert (await charge_point.call("Heartbeat", {}))[0] == 3
        assert dev_csms.frames_from("CP-WSS") == ['[2,"m-1","Heartbeat",{}]']
        assert refused.value.response.status_code == 502
        await charge_point.aclose()


async def test_slow_csms_makes_the_tap_stop_reading_the_charge_point_and_nothing_is_lost(
    csms: tuple[DevCsms, int], start_tap: TapStarter
) -> None:
    dev_csms, charge_point, _ = await through_tap(csms, start_tap, "CP-SLOW")
    upstream = await eventually(lambda: dev_csms.connections.get("CP-SLOW"))
    upstream.transport.pause_reading()
    frames = [f'[2,"{number}","DataTransfer",{{"vendorId":"v","data":"{"x" * 60_000}"}}]' for number in range(300)]

    # Written without waiting for the socket to drain: what the tap does not read piles up at the charge point.
    sender = charge_point.connection
    for frame in frames:
        sender.protocol.send_text(frame.encode())
        sender.send_data()
    backlog = await settled(sender.transport.get_write_buffer_size)
    upstream.transport.resume_reading()
    await eventually(lambda: len(dev_csms.frames_from("CP-SLOW")) == len(frames), timeout_s=60)

    assert backlog > 4_000_000
    assert dev_csms.frames_from("CP-SLOW") == frames
    await charge_point.aclose()


async def settled(measure: Callable[[], int]) -> int:
    """`measure()` once it has stopped changing (the same in two readings a quarter second apart)."""
    previous = -1
    for _ in range(240):
        current = measure()
        if current == previous:
            return current
        previous = current
        await asyncio.sleep(0.25)
    raise AssertionError("the value kept changing for a minute")
