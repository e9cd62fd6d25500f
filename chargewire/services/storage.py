"""What the database holds: each table's (and partition's) size and oldest row, and the last expiry run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chargewire.store.dialects.upkeep import TableSize
from chargewire.store.retention import ExpiryRun, RetentionStore

__all__ = ["ExpiryRun", "StorageReport", "StorageService", "TableSize"]


@dataclass(frozen=True, slots=True)
class StorageReport:
    """The tables' sizes (as measured now, or by the last run) and the last expiry run."""

    tables: list[TableSize]
    last_run: ExpiryRun


class StorageService:
    """Reports storage for `/metrics`, the back office overview and `chargewire db stats`."""

    def __init__(self, store: RetentionStore) -> None:
        self._store = store

    async def last_run(self) -> ExpiryRun:
        """The last expiry run, with the sizes it measured: one row read, cheap enough for every scrape."""
        return await self._store.last_run()

    async def measure_now(self) -> StorageReport:
        """The sizes now (on SQLite this reads every page of the file) beside the last run."""
        last = await self._store.last_run()
        return StorageReport(await self._store.measure(), replace(last, tables=[]))
