"""Subscriptions in the database: named statements, domain records out, secrets encrypted at rest.

The `subscription_events` rows (one per subscribed event name) are what fan-out at publish and Kafka streams
read, so every statement that changes a subscription's `notifications` rewrites them in the same transaction;
every statement that changes its `via` or `enabled` moves its Kafka stream along in it (`follow_subscription`).

A target other than a webhook's callback URL is its channel's JSON document in the `target` column (the row's
`via` says whose). Secrets live in two encrypted blobs per subscription, each one SecretBox ciphertext of a JSON
document: `target_secrets_encrypted` (the secret half of the target, as its channel type dumps and loads it:
Kafka's SASL password and client key) and `signing_secrets_encrypted` (the Standard Webhooks secrets, newest
first, each with the time it stops being valid, or none for the current one).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.channels.registry import channel_type
from chargewire.kafka.stream_lifecycle import follow_subscription
from chargewire.kafka.streams import PayloadCheck
from chargewire.models import KafkaSecrets, KafkaTarget, SigningSecret, Subscription, Via, via_of
from chargewire.security import SecretBox
from chargewire.store.database import Database
from chargewire.store.tables import subscription_events, subscriptions

# Every column but the two ciphertexts: reads of records never touch secrets.
_RECORD_COLUMNS = tuple(
    column for column in subscriptions.c if column.name not in ("target_secrets_encrypted", "signing_secrets_encrypted")
)


def _to_subscription(mapping: RowMapping) -> Subscription:
    via = via_of(mapping["via"])
    target = mapping["target"]
    kafka = target if via is Via.KAFKA else None
    schedule = mapping["retry_schedule"]
    return Subscription(
        id=mapping["id"],
        via=via,
        notifications=tuple(mapping["notifications"]),
        token_id=mapping["token_id"],
        api_version=mapping["api_version"],
        created_at=mapping["created_at"],
        updated_at=mapping["updated_at"],
        callback_url=mapping["callback_url"],
        kafka=KafkaTarget(**{**kafka, "brokers": tuple(kafka["brokers"])}) if kafka else None,
        target=target if not isinstance(via, Via) else None,
        enabled=bool(mapping["enabled"]),
        description=mapping["description"],
        filter=mapping["filter"],
        retry_schedule_s=tuple(float(s) for s in schedule) if schedule is not None else None,
        disabled_reason=mapping["disabled_reason"],
        failing_since=mapping["failing_since"],
        last_resend_at=mapping["last_resend_at"],
    )


def _mutable_values(subscription: Subscription) -> dict[str, Any]:
    """The columns a replace may change (not the owner, version, creation time or delivery health)."""
    return {
        "via": str(subscription.via),
        "notifications": list(subscription.notifications),
        "callback_url": subscription.callback_url,
        "target": asdict(subscription.kafka) if subscription.kafka else subscription.target,
        "enabled": subscription.enabled,
        "description": subscription.description,
        "filter": subscription.filter,
        "retry_schedule": list(subscription.retry_schedule_s) if subscription.retry_schedule_s is not None else None,
        "updated_at": subscription.updated_at,
    }


class SubscriptionStore:
    """Reads and writes the `subscriptions` and `subscription_events` tables."""

    def __init__(self, database: Database, box: SecretBox) -> None:
        self._database = database
        self._box = box

    async def insert_subscription(
        self, subscription: Subscription, target_secrets: object, signing_secret: str
    ) -> None:
        """Store a new subscription with its encrypted secrets and its event-name rows.

        `target_secrets` is the secret half of its target, as its channel's `parse` returned it.
        """
        values = {
            **_mutable_values(subscription),
            "id": subscription.id,
            "api_version": subscription.api_version,
            "token_id": subscription.token_id,
            "created_at": subscription.created_at,
            "target_secrets_encrypted": self._seal_target(subscription.via, target_secrets),
            "signing_secrets_encrypted": self._seal_signing([SigningSecret(signing_secret)]),
        }
        async with self._database.transaction() as connection:
            await connection.execute(insert(subscriptions).values(**values))
            await _write_event_names(connection, subscription.id, subscription.notifications)
            await follow_subscription(connection, subscription.id, None, (subscription.via, subscription.enabled))

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription with this id, if any."""
        query = select(*_RECORD_COLUMNS).where(subscriptions.c.id == subscription_id)
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return _to_subscription(row._mapping) if row else None

    async def versions(self, subscription_ids: Collection[str]) -> dict[str, datetime]:
        """The `updated_at` of each of these subscriptions that exists: every change of its settings, its
        enabled state or its secrets moves it (its delivery health does not)."""
        query = select(subscriptions.c.id, subscriptions.c.updated_at).where(
            subscriptions.c.id.in_(list(subscription_ids))
        )
        async with self._database.reading() as connection:
            return {row.id: row.updated_at for row in (await connection.execute(query)).all()}

    async def list_by_id(
        self,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        token_id: str | None = None,
        via: Via | None = None,
    ) -> list[Subscription]:
        """Up to `limit` subscriptions in id order (ids sort by creation time), after or before a given id.

        With `before`, the rows are the ones just before it, still returned in ascending order.
        """
        query = select(*_RECORD_COLUMNS).where(*_visible(token_id, via)).limit(limit)
        if before is not None:
            query = query.where(subscriptions.c.id < before).order_by(subscriptions.c.id.desc())
        else:
            query = query.order_by(subscriptions.c.id)
            if after is not None:
                query = query.where(subscriptions.c.id > after)
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        records = [_to_subscription(row._mapping) for row in rows]
        return records[::-1] if before is not None else records

    async def list_numbered(
        self, *, offset: int, limit: int, token_id: str | None = None, via: Via | None = None
    ) -> tuple[list[Subscription], int]:
        """One page of subscriptions in id order, and how many there are in all."""
        conditions = _visible(token_id, via)
        page = select(*_RECORD_COLUMNS).where(*conditions).order_by(subscriptions.c.id).offset(offset).limit(limit)
        count = select(func.count()).select_from(subscriptions).where(*conditions)
        async with self._database.reading() as connection:
            total = int((await connection.execute(count)).scalar_one())
            rows = (await connection.execute(page)).all()
        return [_to_subscription(row._mapping) for row in rows], total

    async def replace_subscription(
        self, subscription: Subscription, target_secrets: object, keeps: PayloadCheck | None = None
    ) -> bool:
        """Overwrite a subscription's settings and its event-name rows; False when it is gone.

        `keeps` is its payload filter: a Kafka subscription that becomes a webhook takes the events its stream
        had yet to read along as rows, those that `keeps` accepts.
        """
        values = {
            **_mutable_values(subscription),
            "target_secrets_encrypted": self._seal_target(subscription.via, target_secrets),
        }
        statement = update(subscriptions).where(subscriptions.c.id == subscription.id).values(**values)
        async with self._database.transaction() as connection:
            was = await _via_and_enabled(connection, subscription.id)
            if was is None or (await connection.execute(statement)).rowcount == 0:
                return False
            await connection.execute(
                delete(subscription_events).where(subscription_events.c.subscription_id == subscription.id)
            )
            await _write_event_names(connection, subscription.id, subscription.notifications)
            becomes = (subscription.via, subscription.enabled)
            await follow_subscription(connection, subscription.id, was, becomes, keeps)
        return True

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Remove a subscription, its event-name rows and its deliveries; False when there was none."""
        # Event-name rows and deliveries go with it by ON DELETE CASCADE (SQLite runs with foreign_keys on).
        async with self._database.transaction() as connection:
            result = await connection.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
        return bool(result.rowcount)

    async def set_enabled(self, subscription_id: str, enabled: bool, now: datetime, reason: str | None = None) -> bool:
        """Enable or disable a subscription (enabling clears the failure record); False when it is gone."""
        values: dict[str, Any] = {"enabled": enabled, "updated_at": now, "disabled_reason": None if enabled else reason}
        if enabled:
            # A fresh start: failures before the pause do not count toward disabling it again.
            values["failing_since"] = None
        statement = update(subscriptions).where(subscriptions.c.id == subscription_id).values(**values)
        async with self._database.transaction() as connection:
            was = await _via_and_enabled(connection, subscription_id)
            if was is None:
                return False
            await connection.execute(statement)
            await follow_subscription(connection, subscription_id, was, (was[0], enabled))
        return True

    async def disable_failing(self, failing_before: datetime, now: datetime) -> list[Subscription]:
        """Disable every enabled subscription that has failed continuously since before `failing_before`."""
        condition = (subscriptions.c.enabled.is_(True), subscriptions.c.failing_since < failing_before)
        async with self._database.transaction() as connection:
            rows = (await connection.execute(select(*_RECORD_COLUMNS).where(*condition))).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            await connection.execute(
                update(subscriptions)
                .where(subscriptions.c.id.in_(ids))
                .values(enabled=False, disabled_reason="failing continuously", updated_at=now)
            )
            for row in rows:
                via = via_of(row.via)
                await follow_subscription(connection, row.id, (via, True), (via, False))
        return [_to_subscription(row._mapping) for row in rows]

    async def claim_resend(self, subscription_id: str, now: datetime, cooldown_s: float) -> bool:
        """Record a resend at `now` unless the subscription is disabled or was resent within the cooldown.

        One conditional UPDATE, so two concurrent resends cannot both pass the check.
        """
        statement = (
            update(subscriptions)
            .where(
                subscriptions.c.id == subscription_id,
                subscriptions.c.enabled.is_(True),
                or_(
                    subscriptions.c.last_resend_at.is_(None),
                    subscriptions.c.last_resend_at <= now - timedelta(seconds=cooldown_s),
                ),
            )
            .values(last_resend_at=now)
        )
        async with self._database.transaction() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def target_secrets(self, subscription_id: str) -> Any:
        """The decrypted secret half of a subscription's target, loaded by its channel type; None if it has none."""
        query = select(subscriptions.c.via, subscriptions.c.target_secrets_encrypted).where(
            subscriptions.c.id == subscription_id
        )
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        if row is None or row.target_secrets_encrypted is None:
            return None
        document = json.loads(self._box.decrypt(bytes(row.target_secrets_encrypted)))
        return channel_type(row.via).load_secrets(document)

    async def kafka_secrets(self, subscription_id: str) -> KafkaSecrets | None:
        """The decrypted SASL password and client key of a Kafka subscription, if it has any."""
        secrets = await self.target_secrets(subscription_id)
        return secrets if isinstance(secrets, KafkaSecrets) else None

    async def signing_secrets(self, subscription_id: str, now: datetime) -> list[SigningSecret]:
        """The signing secrets valid at `now`, newest first (empty when the subscription is gone)."""
        query = select(subscriptions.c.signing_secrets_encrypted).where(subscriptions.c.id == subscription_id)
        async with self._database.reading() as connection:
            sealed = (await connection.execute(query)).scalar_one_or_none()
        return _valid_at(self._open_signing(sealed), now) if sealed is not None else []

    async def rotate_signing_secret(
        self, subscription_id: str, new_secret: str, now: datetime, overlap_s: float
    ) -> list[SigningSecret] | None:
        """Make `new_secret` current; the previous one stays valid for `overlap_s`. None when the row is gone.

        Returns the secrets valid from now on, newest first. Secrets already expired are dropped.
        """
        query = (
            select(subscriptions.c.signing_secrets_encrypted)
            .where(subscriptions.c.id == subscription_id)
            .with_for_update()
        )
        async with self._database.transaction() as connection:
            sealed = (await connection.execute(query)).scalar_one_or_none()
            if sealed is None:
                return None
            expires_at = now + timedelta(seconds=overlap_s)
            previous = [
                SigningSecret(s.secret, expires_at if s.expires_at is None else min(s.expires_at, expires_at))
                for s in _valid_at(self._open_signing(sealed), now)
            ]
            secrets = _valid_at([SigningSecret(new_secret), *previous], now)
            await connection.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id)
                .values(signing_secrets_encrypted=self._seal_signing(secrets), updated_at=now)
            )
        return secrets

    def _seal_target(self, via: str, secrets: object) -> bytes | None:
        document = channel_type(via).dump_secrets(secrets) if secrets is not None else None
        return self._box.encrypt(json.dumps(document)) if document is not None else None

    def _seal_signing(self, secrets: Sequence[SigningSecret]) -> bytes:
        document = [
            {"secret": s.secret, "expires_at": s.expires_at.isoformat() if s.expires_at else None} for s in secrets
        ]
        return self._box.encrypt(json.dumps(document))

    def _open_signing(self, sealed: bytes) -> list[SigningSecret]:
        document = json.loads(self._box.decrypt(bytes(sealed)))
        return [
            SigningSecret(item["secret"], datetime.fromisoformat(item["expires_at"]) if item["expires_at"] else None)
            for item in document
        ]


def _visible(token_id: str | None, via: Via | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if token_id is not None:
        conditions.append(subscriptions.c.token_id == token_id)
    if via is not None:
        conditions.append(subscriptions.c.via == str(via))
    return conditions


def _valid_at(secrets: Sequence[SigningSecret], now: datetime) -> list[SigningSecret]:
    return [s for s in secrets if s.expires_at is None or s.expires_at > now]


async def _via_and_enabled(connection: AsyncConnection, subscription_id: str) -> tuple[str, bool] | None:
    """A subscription's channel and whether it is enabled, locked for the rest of the transaction.

    FOR NO KEY UPDATE, as the UPDATE that follows would take: it leaves the rows that refer to the subscription
    (deliveries written meanwhile) free to be written.
    """
    query = (
        select(subscriptions.c.via, subscriptions.c.enabled)
        .where(subscriptions.c.id == subscription_id)
        .with_for_update(key_share=True)
    )
    row = (await connection.execute(query)).first()
    return (via_of(row.via), bool(row.enabled)) if row else None


async def _write_event_names(connection: AsyncConnection, subscription_id: str, names: Sequence[str]) -> None:
    if names:
        await connection.execute(
            insert(subscription_events),
            [{"event_name": name, "subscription_id": subscription_id} for name in dict.fromkeys(names)],
        )
