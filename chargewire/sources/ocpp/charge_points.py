"""The charge points the OCPP taps have seen, as `chargewire ocpp charge-points` and the back office list them."""

from __future__ import annotations

from chargewire.store.database import Database
from chargewire.store.ocpp_registry_store import ChargePointRecord, OcppRegistryStore


async def list_charge_points(database: Database) -> list[ChargePointRecord]:
    """Every identity in the registry of the service's database, whichever tap recorded it."""
    return await OcppRegistryStore(database).list_charge_points()
