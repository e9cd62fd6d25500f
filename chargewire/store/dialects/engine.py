"""What both databases' engines share: bounded waits and the JSON codec; and what opening one gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from chargewire.store.dialects.sqlite_checkpoint import WalCheckpointer

# How long any one wait on the database may last, so that nothing hangs while it is locked, down or unreachable:
# SQLite's busy timeout (another process holds the write lock), PostgreSQL's connect timeout. The API answers
# 503 within its request deadline (a little longer), and the workers' supervisor retries.
DATABASE_WAIT_S = 3.0


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (attempt headers above all) go through orjson: the standard library's encoder cost more per
# attempt than the rest of the row.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


@dataclass(frozen=True, slots=True)
class OpenedEngine:
    """An engine as a dialect opened it, with what runs beside it."""

    engine: AsyncEngine
    # SQLite on disk: the background WAL checkpointer, and the file, which other processes may write too.
    checkpointer: WalCheckpointer | None = None
    sqlite_file: Path | None = None
