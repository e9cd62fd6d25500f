"""The running service's parts, wired once from the settings: database, secret box, stores and services.

The delivery loop's parts (dispatcher, heartbeat, expiry, idempotency sweep) are imported by the methods that start
them: the CLI's commands that only read or write the database open a runtime too and never run them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING

from chargewire.channels.registry import ChannelContext, channel_types
from chargewire.config import Settings
from chargewire.dispatch.metrics import DeliveryMetrics
from chargewire.dispatch.retry_policy import KAFKA_RETRY_MARGIN_S, delays_below, kafka_retry_floor_s
from chargewire.dispatch.supervisor import Supervisor
from chargewire.dispatch.wakeups import WakeSignal
from chargewire.errors import ConfigurationError
from chargewire.filters import FilterLimits
from chargewire.kafka.stream_store import StreamStore
from chargewire.security import SecretBox
from chargewire.security.key_file import SecretKey, key_file_path, key_mismatch_message, resolve_secret_key
from chargewire.services.deliveries import DeliveryService
from chargewire.services.health import HealthService
from chargewire.services.idempotency import IdempotentPublisher
from chargewire.services.overview import OverviewService
from chargewire.services.publish import Publisher
from chargewire.services.resend import ResendService
from chargewire.services.storage import StorageService
from chargewire.services.subscription_health import SubscriptionHealth
from chargewire.services.subscriptions import SubscriptionService
from chargewire.services.tokens import TokenService
from chargewire.services.users import UserService
from chargewire.store.database import Database, create_database
from chargewire.store.delivery_stats import DeliveryStats
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.dialects import WakeSender, WakeWatcher
from chargewire.store.event_store import EventStore
from chargewire.store.idempotency_store import IdempotencyStore
from chargewire.store.retention import RetentionStore
from chargewire.store.schema_revision import current_revision, head_revision
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.token_store import TokenStore
from chargewire.store.user_store import UserStore
from chargewire.store.worker_store import WorkerStore

if TYPE_CHECKING:
    from chargewire.dispatch.dispatcher import Dispatcher
    from chargewire.dispatch.expiry import Expirer
    from chargewire.services.worker_assignments import WorkerAssignments

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a process of chargewire uses, opened together and closed together."""

    settings: Settings
    database: Database
    box: SecretBox
    tokens: TokenService
    publisher: Publisher
    idempotent: IdempotentPublisher
    idempotency_store: IdempotencyStore
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
    notifier: WakeSender | None
    worker_store: WorkerStore
    retention: RetentionStore
    storage: StorageService
    # The supervisor of this process's delivery worker, while `deliver` runs.
    supervisor: Supervisor | None = None
    health_checks: HealthService = field(init=False)

    def __post_init__(self) -> None:
        self.health_checks = HealthService(self.database, self.worker_store, self.loop_states)
        for channel in channel_types():
            for collector in channel.collectors():
                self.metrics.registry.register(collector)

    @classmethod
    async def open(cls, settings: Settings, *, migrate_embedded: bool = True) -> Runtime:
        """Connect and wire the services; migrates the embedded SQLite default when asked."""
        key = resolve_secret_key(settings)
        box = SecretBox(key.value)
        database = create_database(settings.effective_database_url)
        tokens = TokenService(TokenStore(database), box)
        try:
            if migrate_embedded and settings.uses_embedded_database:
                # Alembic loads only here: a runtime on a configured database checks its revision without it.
                from chargewire.store import migrate

                await migrate.upgrade(database)
            await _require_current_schema(database)
            await _require_matching_key(tokens, key, settings)
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
        worker_store = WorkerStore(database)
        idempotency_store = IdempotencyStore(database)
        wakeups = WakeSignal()
        publisher.on_published(wakeups.fire)
        notifier = database.dialect.wake_notifier(database)
        retention = RetentionStore(database)
        if notifier is not None:
            wakeups.connect_notifier(notifier.request)
        return cls(
            settings=settings,
            database=database,
            box=box,
            tokens=tokens,
            publisher=publisher,
            idempotent=IdempotentPublisher(publisher, idempotency_store),
            idempotency_store=idempotency_store,
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
            overview=OverviewService(
                DeliveryStats(database),
                delivery_store,
                subscriptions,
                HealthService(database, worker_store),
                storage=StorageService(retention),
            ),
            wakeups=wakeups,
            notifier=notifier,
            worker_store=worker_store,
            retention=retention,
            storage=StorageService(retention),
        )

    def dispatcher(self) -> Dispatcher:
        """A delivery loop on this runtime's database, woken by this process's wakeups, counted in its metrics."""
        from chargewire.dispatch.dispatcher import Dispatcher
        from chargewire.dispatch.targets import StoredTargets

        context = ChannelContext(self.settings, self.subscription_store.target_secrets)
        dispatcher = Dispatcher(
            self.settings,
            self.delivery_store,
            StoredTargets(self.subscription_store, TokenStore(self.database), self.box),
            {channel.name: channel.client(context) for channel in channel_types()},
            on_failing=self.health.disable_failing,
            streams=self.stream_store,
        )
        dispatcher.add_listener(self.metrics.observe_attempts)
        self.publisher.on_rows_made(dispatcher.due_known)
        self.publisher.hand_off_to(dispatcher, lambda: self._after_hand_off(dispatcher))
        self.wakeups.connect(dispatcher.wake)
        self.subscriptions.on_streams_changed(dispatcher.streams_changed)
        return dispatcher

    def _after_hand_off(self, dispatcher: Dispatcher) -> None:
        """After a publish whose every delivery `dispatcher` took: nothing is due to claim, but Kafka streams, here
        and in other processes, read the new events."""
        if dispatcher.wake_streams() and self.notifier is not None:
            self.notifier.request()

    def wake_listener(self, dispatcher: Dispatcher) -> WakeWatcher | None:
        """What wakes `dispatcher` when another process makes deliveries due (None for in-memory SQLite)."""
        # A wake-up that names the deliveries it made due goes to the same method, which claims just those.
        from chargewire.services.worker_assignments import TakingAssignments

        release = self.delivery_store.release_leases
        taking = TakingAssignments(dispatcher, dispatcher.worker_id, release, self.settings)
        hooks = replace(
            self.stream_store.wake_hooks(dispatcher.heard, dispatcher.worker_id),
            announced=dispatcher.heard,
            assigned=(dispatcher.worker_id, taking),
            due_seen=dispatcher.due_known,
        )
        return self.database.dialect.wake_listener(self.database, hooks)

    def assign_to_workers(self) -> WorkerAssignments | None:
        """In a process without a worker, on PostgreSQL: write new webhook deliveries leased to a listening worker
        and send them to it whole, so that their first attempt needs no claim (`services.worker_assignments`)."""
        from chargewire.services.worker_assignments import WorkerAssignments, assignment_lease_s
        from chargewire.store.dialects.postgresql_wakeups import WakeNotifier, listening_workers

        if not isinstance(self.notifier, WakeNotifier):
            return None
        engine = self.database.engine
        assignments = WorkerAssignments(
            lambda since: listening_workers(engine, since),
            self.notifier,
            self.delivery_store.release_leases,
            assignment_lease_s(self.settings),
        )
        self.publisher.hand_off_to(assignments, lambda: None)
        return assignments

    async def deliver(self, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
        """Run `dispatcher` until `stop` is set, woken by this process and by every other, with a heartbeat.

        Every loop runs under one supervisor (`dispatch.supervisor`): outages are retried until they clear, and
        a fault that cannot clear stops them all and raises TaskFailed once in-flight work is finished.
        """
        from chargewire.dispatch.heartbeat import Heartbeat
        from chargewire.dispatch.idempotency_sweep import IdempotencySweep

        _log_kafka_retry_floor(self.settings)
        supervisor = self.supervisor = Supervisor(stop)
        self.metrics.watch(supervisor)
        listener = self.wake_listener(dispatcher)
        if listener is not None:
            supervisor.start("wake-listener", listener.run)
        heartbeat = Heartbeat(self.worker_store, dispatcher.worker_id, supervisor)
        supervisor.start("heartbeat", heartbeat.run)
        supervisor.start("expiry", self.expirer(dispatcher.worker_id).run)
        sweep = IdempotencySweep(self.idempotency_store, self.settings.idempotency_retention_s)
        supervisor.start("idempotency-sweep", sweep.run)
        try:
            await dispatcher.run(stop, supervisor)
        finally:
            await heartbeat.last_beat()

    def expirer(self, owner: str) -> Expirer:
        """The expiry loop of this runtime's settings, which expires while `owner` holds the expiry lease."""
        from chargewire.dispatch.expiry import Expirer, retention_policy

        return Expirer(
            self.retention,
            retention_policy(self.settings),
            owner,
            interval_s=self.settings.retention_interval_s,
        )

    def loop_states(self) -> dict[str, str] | None:
        """Each loop of this process's worker and its state; None when this process runs no worker."""
        if self.supervisor is None:
            return None
        return {status.name: status.state.value for status in self.supervisor.statuses()}

    async def aclose(self) -> None:
        """Send the last wake-up, then release connections."""
        await self.tokens.flush_touches()
        if self.notifier is not None:
            await self.notifier.aclose()
        await self.database.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _log_kafka_retry_floor(settings: Settings) -> None:
    """Say once, as the worker starts, which retries of the schedule Kafka records wait longer for, and why."""
    floor_s = kafka_retry_floor_s(settings.kafka_message_timeout_s)
    raised = delays_below(settings.retry_schedule_s, floor_s)
    if raised:
        logger.info(
            "Kafka records wait at least %g s before a retry (CHARGEWIRE_KAFKA_MESSAGE_TIMEOUT_S plus %g s), not the "
            "%s s of the retry schedule: a record still in flight in another worker could otherwise land after the "
            "retry of an earlier one of its entity (decision 0005)",
            floor_s,
            KAFKA_RETRY_MARGIN_S,
            ", ".join(f"{delay:g}" for delay in raised),
        )


async def _require_matching_key(tokens: TokenService, key: SecretKey, settings: Settings) -> None:
    """Refuse a key that differs from the one the stored secrets were written with, before writing any."""
    if not await tokens.decrypts_stored_tokens():
        raise ConfigurationError(key_mismatch_message(key, key_file_path(settings)))


async def _require_current_schema(database: Database) -> None:
    current, head = await current_revision(database), head_revision()
    if current != head:
        raise ConfigurationError(
            f"The database schema is at revision {current or 'none'}, this chargewire needs {head}: "
            "run `chargewire db upgrade`."
        )
