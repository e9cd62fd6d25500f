"""The one-time import of an older tap's registry file (`ocpp-tap.db`) into the service's database.

Taps before the registry moved into the database kept it in a SQLite file of their own. Subscribers know charge
points, EVSEs and sessions by the ids in that file, so a tap that starts on an upgraded installation copies the
file's rows, ids included, into the database's empty registry, then renames the file to `*.imported` so that it is
read once. The file is only read; a database that holds a registry already is left as it is.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError

from chargewire.config import Settings
from chargewire.store.ocpp_registry_store import REGISTRY_TABLES, OcppRegistryStore

logger = logging.getLogger(__name__)


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# How the file's values become the database's; `connected` is false, the tap that held them being the one starting.
_CONVERTED: dict[str, Callable[[Any], Any]] = {
    "connected": lambda _: False,
    "stopped": bool,
    "changed_at": _moment,
    "last_message_at": _moment,
}


def legacy_state_file(settings: Settings) -> Path:
    """Where an older tap kept its registry: `CHARGEWIRE_OCPP_STATE_FILE` (deprecated), or its default."""
    return settings.ocpp_state_file or settings.data_dir / "ocpp-tap.db"


async def import_legacy_state(settings: Settings, store: OcppRegistryStore) -> bool:
    """Copy an older tap's registry file into the database if there is one and the database has none yet."""
    path = legacy_state_file(settings)
    if not path.is_file():
        return False
    if not await store.is_empty():
        logger.warning("OCPP tap: %s is not imported: the database holds a registry already", path)
        return False
    rows = await asyncio.to_thread(_read_file, path)
    try:
        await store.insert_imported(rows)
    except IntegrityError:
        # Another tap imported (or recorded) charge points meanwhile; its registry stands.
        logger.warning("OCPP tap: %s is not imported: another tap filled the database's registry first", path)
        return False
    imported = path.with_name(f"{path.name}.imported")
    path.rename(imported)
    counts = ", ".join(f"{len(found)} {table.name}" for table, found in rows.items())
    logger.warning("OCPP tap: imported %s from %s (now %s); the setting can go", counts, path, imported)
    return True


def _read_file(path: Path) -> Mapping[Table, Sequence[Mapping[str, Any]]]:
    """Every row of the file's registry tables, as the database's tables take them."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return {table: [_converted(row) for row in connection.execute(_query(table))] for table in REGISTRY_TABLES}
    finally:
        connection.close()


def _query(table: Table) -> str:
    # The file had every column of the database's tables but `tap`, which a file never shared.
    columns = [column.name for column in table.columns if column.name != "tap"]
    return f"SELECT {', '.join(columns)} FROM {table.name}"  # noqa: S608 - the names are the schema's own


def _converted(row: sqlite3.Row) -> dict[str, Any]:
    return {key: _CONVERTED[key](row[key]) if key in _CONVERTED else row[key] for key in row.keys()}  # noqa: SIM118
