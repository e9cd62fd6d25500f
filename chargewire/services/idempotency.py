"""Idempotent publishing: a publish sent with an `Idempotency-Key` is stored once, however often it is sent.

As Stripe and Svix do it, and as the IETF draft "The Idempotency-Key HTTP Header Field" describes:
- The key is the client's: 1 to 255 visible ASCII characters (a UUID is a good choice), scoped to the API token
  that sends it. It is stored in the transaction of the events it published, so it exists if and only if
  they do: a publish answered 503 whose transaction committed afterwards is found by its retry.
- A repeat with the same payloads answers the stored event ids (the same 202) and publishes nothing. With
  other payloads it is refused with 422 naming the header, the draft's answer for a reused key (Stripe
  answers 400): replaying the stored ids would claim that payloads never stored were.
- Two requests with one key at once publish once, and neither gets a 409 "in progress": in one process the
  later waits for the earlier's outcome; across processes the table's primary key decides, and the loser,
  whose transaction stored nothing, reads the winner's result. A wait longer than the API's request deadline
  is answered 503, and the client retries as it would anyway.
- A key is kept at least `idempotency_retention_s` (24 h by default); a supervised sweep then deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chargewire.errors import IdempotencyKeyTaken, ValidationFailed
from chargewire.services.group_commit import PendingBatch
from chargewire.services.publish import Publisher
from chargewire.store.idempotency_store import IdempotencyStore, IdempotentPublish

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255
# Visible ASCII only: the same key then reads the same in every header parser and on both databases.
_KEY = re.compile(rf"[\x21-\x7e]{{1,{KEY_MAX_CHARS}}}")


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The event ids a publish is answered with, and whether they come from an earlier publish with its key."""

    event_ids: list[str]
    replayed: bool


def check_key(key: str) -> None:
    """ValidationFailed naming the header unless `key` is 1 to 255 visible ASCII characters."""
    if _KEY.fullmatch(key) is None:
        raise ValidationFailed(
            {HEADER: [f"An {HEADER} is 1 to {KEY_MAX_CHARS} visible ASCII characters, without spaces; a UUID will do."]}
        )


def request_hash(payloads: Sequence[bytes]) -> str:
    """The SHA-256, in hex, of a publish's serialised payloads: equal for equal payloads in the same order."""
    digest = hashlib.sha256()
    for payload in payloads:
        digest.update(len(payload).to_bytes(8, "big"))
        digest.update(payload)
    return digest.hexdigest()


class IdempotentPublisher:
    """Publishes under an idempotency key: once per (token, key), answering repeats with the stored result."""

    def __init__(self, publisher: Publisher, store: IdempotencyStore) -> None:
        self._publisher = publisher
        self._store = store
        # The publish of each (token, key) under way in this process; a second request with the key waits for it.
        self._in_flight: dict[tuple[str, str], asyncio.Task[PublishResult]] = {}

    async def publish(self, payloads: Sequence[object], token_id: str, key: str) -> PublishResult:
        """Validate and publish `payloads` unless `key` was used by this token; then answer its stored result.

        ValidationFailed for an invalid key, invalid payloads, or a key used before with other payloads.
        """
        check_key(key)
        batch = self._publisher.prepare(payloads)
        claim = IdempotentPublish(token_id, key, request_hash(batch.events.payloads), batch.events.ids)
        slot = (token_id, key)
        while (running := self._in_flight.get(slot)) is not None and not running.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(running)
        # A task of its own, shielded: a request answered 503 at the deadline is cancelled, but its publish goes
        # on to its commit, and a retry meanwhile waits for it here rather than racing it.
        task = asyncio.ensure_future(self._publish_once(batch, claim))
        self._in_flight[slot] = task
        task.add_done_callback(lambda done: self._settled(slot, done))
        return await asyncio.shield(task)

    async def _publish_once(self, batch: PendingBatch, claim: IdempotentPublish) -> PublishResult:
        stored = await self._store.find(claim.token_id, claim.key)
        if stored is None:
            try:
                return PublishResult(await self._publisher.write(replace(batch, claim=claim)), replayed=False)
            except IdempotencyKeyTaken:
                # Another process stored the key between the look-up and the commit; its result is the answer.
                stored = await self._store.find(claim.token_id, claim.key)
                if stored is None:
                    raise
        if stored.request_hash != claim.request_hash:
            raise ValidationFailed(
                {
                    HEADER: [
                        f"This {HEADER} was used with a different body (by this token, within the retention); "
                        "send a new key for a new publish."
                    ]
                }
            )
        return PublishResult(list(stored.event_ids), replayed=True)

    def _settled(self, slot: tuple[str, str], task: asyncio.Task[PublishResult]) -> None:
        if self._in_flight.get(slot) is task:
            del self._in_flight[slot]
        # Retrieved here too: the request that awaited it may have been answered 503 and gone.
        if not task.cancelled() and task.exception() is not None:
            logger.debug("a publish with an idempotency key ended with %r", task.exception())
