"""The running service's parts, wired once from the settings: database, secret box, stores and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from chargewire.channels.kafka import KafkaChannel
from chargewire.channels.kafka_producers import KafkaProducers
from chargewire.channels.webhook import WebhookChannel
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.dispatch.metrics import DeliveryMetrics
from chargewire.dispatch.targets import StoredTargets
from chargewire.dispatch.wakeups import CommitWatcher, WakeListener, WakeNotifier, WakeSignal
from chargewire.errors import ConfigurationError
from chargewire.models import Via
from chargewire.security import SecretBox
from chargewire.services.deliveries import DeliveryService
from chargewire.services.overview import OverviewService
from chargewire.services.payload_filter import FilterLimits
from chargewire.services.publish import Publisher
from chargewire.services.resend import ResendService
from chargewire.services.subscription_health import SubscriptionHealth
from chargewire.services.subscriptions import SubscriptionService
from chargewire.services.tokens import TokenService
from chargewire.services.users import UserService
from chargewire.store import migrate
from chargewire.store.database import Database, create_database
from chargewire.store.delivery_stats import DeliveryStats
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.event_store import EventStore
from chargewire.store.stream_store import StreamStore
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.token_store import TokenStore
from chargewire.store.user_store import UserStore

logger = logging.getLogger(__name__)

_DEMO_KEY_FILE = "secret.key"


def resolve_secret_key(settings: Settings) -> str:
    """The configured secret key; in demo mode one is made once and kept in the data folder."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    if not settings.demo_mode:
        raise ConfigurationError(
            "CHARGEWIRE_SECRET_KEY is not set. It encrypts stored tokens and secrets: set it to 32 or more random "
            "characters, for example the output of `openssl rand -base64 32`."
        )
    key_file = Path(settings.data_dir) / _DEMO_KEY_FILE
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        logger.warning("demo mode: made a secret key in %s", key_file)
    return key_file.read_text().strip()


@dataclass
class Runtime:
    """Everything a process of chargewire uses, opened together and closed together."""

    settings: Settings
    database: Database
    box: SecretBox
    tokens: TokenService
    publisher: Publisher
    subscriptions: SubscriptionService
    resends: ResendService
    deliveries: DeliveryService
    delivery_store: DeliveryStore
    subscription_store: SubscriptionStore
    stream_store: StreamStore
    metrics: DeliveryMetrics
    health: SubscriptionHealth
    users: UserService
    overview: OverviewService
    wakeups: WakeSignal
    notifier: WakeNotifier | None

    @classmethod
    async def open(cls, settings: Settings, *, migrate_embedded: bool = True) -> Runtime:
        """Connect and wire the services; migrates the embedded SQLite default when asked."""
        box = SecretBox(resolve_secret_key(settings))
        database = create_database(settings.effective_database_url)
        try:
            if migrate_embedded and settings.uses_embedded_database:
                await migrate.upgrade(database)
            await _require_current_schema(database)
        except BaseException:
            await database.aclose()
            raise
        subscription_store = SubscriptionStore(database, box)
        subscriptions = SubscriptionService(
            subscription_store,
            settings.delivery_allow_networks,
            settings.secret_rotation_overlap_s,
            FilterLimits(settings.filter_max_bytes, settings.filter_max_values),
        )
        delivery_store = DeliveryStore(database)
        event_store = EventStore(database)
        publisher = Publisher(event_store, settings.ingest_max_batch)
        wakeups = WakeSignal()
        publisher.on_published(wakeups.fire)
        # SQLite has one process (`serve`), so its in-process wake is all it needs.
        notifier = None if database.is_sqlite else WakeNotifier(database.engine)
        if notifier is not None:
            wakeups.connect(notifier.request)
        return cls(
            settings=settings,
            database=database,
            box=box,
            tokens=TokenService(TokenStore(database), box),
            publisher=publisher,
            subscriptions=subscriptions,
            resends=ResendService(
                subscriptions, subscription_store, delivery_store, settings.resend_cooldown_s, on_due=wakeups.fire
            ),
            deliveries=DeliveryService(delivery_store, event_store, subscriptions, publisher, on_due=wakeups.fire),
            delivery_store=delivery_store,
            subscription_store=subscription_store,
            stream_store=StreamStore(database),
            metrics=DeliveryMetrics(),
            health=SubscriptionHealth(subscription_store, publisher, settings.disable_after_failing_s),
            users=UserService(UserStore(database)),
            overview=OverviewService(DeliveryStats(database), delivery_store, subscriptions),
            wakeups=wakeups,
            notifier=notifier,
        )

    def dispatcher(self) -> Dispatcher:
        """A delivery loop on this runtime's database, woken by this process's wakeups, counted in its metrics."""
        dispatcher = Dispatcher(
            self.settings,
            self.delivery_store,
            StoredTargets(self.subscription_store, TokenStore(self.database), self.box),
            {
                Via.WEBHOOK: WebhookChannel(self.settings),
                Via.KAFKA: KafkaChannel(
                    self.subscription_store.kafka_secrets,
                    producers=KafkaProducers(
                        message_timeout_s=self.settings.kafka_message_timeout_s,
                        connect_timeout_s=self.settings.kafka_connect_timeout_s,
                        linger_ms=self.settings.kafka_linger_ms,
                        gzip_level=self.settings.kafka_gzip_level,
                    ),
                    allow_networks=self.settings.delivery_allow_networks,
                ),
            },
            on_failing=self.health.disable_failing,
            streams=self.stream_store,
        )
        dispatcher.add_listener(self.metrics.observe_attempts)
        self.wakeups.connect(dispatcher.wake)
        return dispatcher

    def wake_listener(self, dispatcher: Dispatcher) -> WakeListener | CommitWatcher | None:
        """What wakes `dispatcher` when another process makes deliveries due (None for in-memory SQLite)."""
        if not self.database.is_sqlite:
            return WakeListener(self.database.engine, dispatcher.wake)
        if self.database.sqlite_file is None:
            return None
        streams = self.stream_store

        async def work_due() -> bool:
            return await streams.work_due(utcnow(), dispatcher.worker_id)

        return CommitWatcher(self.database.sqlite_file, streams.newest_work, work_due, dispatcher.wake)

    async def deliver(self, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
        """Run `dispatcher` until `stop` is set, woken by this process and by every other."""
        listener = self.wake_listener(dispatcher)
        if listener is None:
            await dispatcher.run(stop)
            return
        listening = asyncio.create_task(listener.run(stop))
        try:
            await dispatcher.run(stop)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def aclose(self) -> None:
        """Send the last wake-up, then release connections."""
        if self.notifier is not None:
            await self.notifier.aclose()
        await self.database.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _require_current_schema(database: Database) -> None:
    current, head = await migrate.current_revision(database), migrate.head_revision()
    if current != head:
        raise ConfigurationError(
            f"The database schema is at revision {current or 'none'}, this chargewire needs {head}: "
            "run `chargewire db upgrade`."
        )
