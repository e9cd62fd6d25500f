"""An older tap's `ocpp-tap.db` is imported into the service's database once, ids kept, on both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chargewire.runtime import Runtime
from chargewire.sources.ocpp import Registry, list_charge_points
from chargewire.sources.ocpp.legacy_state import import_legacy_state
from chargewire.store.ocpp_registry_store import OcppRegistryStore

# The registry file as taps before migration 0011 wrote it.
_OLD_SCHEMA = """
CREATE TABLE ocpp_charge_points (id INTEGER PRIMARY KEY AUTOINCREMENT, identity TEXT NOT NULL UNIQUE, version TEXT,
    connected INTEGER NOT NULL DEFAULT 0, changed_at TEXT NOT NULL, last_message_at TEXT);
CREATE TABLE ocpp_evses (id INTEGER PRIMARY KEY AUTOINCREMENT, charge_point_id INTEGER NOT NULL,
    connector INTEGER NOT NULL, UNIQUE (charge_point_id, connector));
CREATE TABLE ocpp_sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, charge_point_id INTEGER NOT NULL,
    evse_id INTEGER NOT NULL, transaction_key TEXT NOT NULL, id_tag TEXT, started_at TEXT NOT NULL,
    meter_start INTEGER NOT NULL, stopped INTEGER NOT NULL DEFAULT 0, same_as INTEGER,
    UNIQUE (charge_point_id, transaction_key));
CREATE TABLE ocpp_counters (charge_point_id INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (charge_point_id, name));
INSERT INTO ocpp_charge_points VALUES (7, 'CP-OLD-A', 'ocpp1.6', 1, '2025-03-01T09:00:00.000Z',
    '2025-03-01T09:05:00.000Z');
INSERT INTO ocpp_charge_points VALUES (9, 'CP-OLD-B', 'ocpp2.0.1', 0, '2025-03-01T09:00:00.000Z', NULL);
INSERT INTO ocpp_evses VALUES (3, 7, 1);
INSERT INTO ocpp_sessions VALUES (12, 7, 3, '4242', 'TAG', '2025-03-01T10:00:00.000Z', 500, 0, NULL);
INSERT INTO ocpp_counters VALUES (0, 'authorization', 31);
"""


def old_registry_file(path: Path) -> Path:
    """A registry file an older tap left at `path`: two charge points, an EVSE, an open session, a counter."""
    connection = sqlite3.connect(path)
    connection.executescript(_OLD_SCHEMA)
    connection.close()
    return path


async def test_an_old_registry_file_is_imported_once_with_its_ids_and_open_session(runtime: Runtime) -> None:
    path = old_registry_file(runtime.settings.data_dir / "ocpp-tap.db")
    store = OcppRegistryStore(runtime.database)

    imported = await import_legacy_state(runtime.settings, store)
    registry = Registry(store, "host-a 0.0.0.0:9000")
    session = await registry.session(7, "4242")
    new_charge_point = await registry.connected("CP-NEW", "ocpp1.6")
    new_evse = await registry.evse_id(7, 2)
    next_authorization = await registry.next_number(0, "authorization")
    listed = {record.identity: record for record in await list_charge_points(runtime.database)}

    assert imported
    assert not path.exists()
    assert path.with_name("ocpp-tap.db.imported").exists()
    assert session is not None
    assert (session.id, session.evse_id, session.meter_start, session.stopped) == (12, 3, 500, False)
    assert (listed["CP-OLD-A"].charge_point_id, listed["CP-OLD-B"].charge_point_id) == (7, 9)
    assert not listed["CP-OLD-A"].connected
    assert await registry.connected("CP-OLD-A", "ocpp1.6") == 7
    assert new_charge_point > 9
    assert new_evse > 3
    assert next_authorization == 32


async def test_an_old_registry_file_is_left_alone_when_the_database_has_a_registry(runtime: Runtime) -> None:
    store = OcppRegistryStore(runtime.database)
    await Registry(store, "host-a 0.0.0.0:9000").connected("CP-ALREADY", "ocpp1.6")
    path = old_registry_file(runtime.settings.data_dir / "ocpp-tap.db")

    imported = await import_legacy_state(runtime.settings, store)

    assert not imported
    assert path.exists()
    assert [record.identity for record in await list_charge_points(runtime.database)] == ["CP-ALREADY"]
