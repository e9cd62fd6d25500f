"""Publishing from Python: `await chargewire.publish(payload)`, the same path as the ingest API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from chargewire.config import Settings
from chargewire.runtime import Runtime

_default_runtime: Runtime | None = None
_default_lock = asyncio.Lock()


# The scope of keys given to `publish`: a token id starts `tok_`, so these never meet the API's keys.
PYTHON_KEY_SCOPE = "python"


async def publish(
    payload: dict[str, Any] | Sequence[dict[str, Any]],
    *,
    runtime: Runtime | None = None,
    idempotency_key: str | None = None,
) -> list[str]:
    """Validate and durably store one event payload or a batch; returns the event ids.

    With `idempotency_key`, a repeat of the same payloads with the same key (after a `DatabaseUnavailable`,
    say) returns the first call's event ids and stores nothing again, as the API's `Idempotency-Key` header
    does; other payloads with the key raise ValidationFailed. Without `runtime`, a runtime is opened from the
    environment on first use and kept for later calls (close it with `aclose_default_runtime()`).
    """
    payloads = [payload] if isinstance(payload, dict) else list(payload)
    target = runtime or await _default()
    if idempotency_key is None:
        return await target.publisher.publish(payloads)
    result = await target.idempotent.publish(payloads, PYTHON_KEY_SCOPE, idempotency_key)
    return result.event_ids


async def _default() -> Runtime:
    global _default_runtime
    async with _default_lock:
        if _default_runtime is None:
            _default_runtime = await Runtime.open(Settings())
        return _default_runtime


async def aclose_default_runtime() -> None:
    """Close the runtime that `publish` opened for itself, if any."""
    global _default_runtime
    async with _default_lock:
        if _default_runtime is not None:
            await _default_runtime.aclose()
            _default_runtime = None
