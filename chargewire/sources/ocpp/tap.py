"""The OCPP tap as one unit: the identity registry, the event pipeline and the proxy, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from chargewire.config import Settings
from chargewire.errors import ConfigurationError
from chargewire.services.publish import Publisher
from chargewire.sources.ocpp.legacy_state import import_legacy_state
from chargewire.sources.ocpp.metrics import TapMetrics
from chargewire.sources.ocpp.pipeline import EventPipeline
from chargewire.sources.ocpp.proxy import OcppProxy, ProxySettings
from chargewire.sources.ocpp.registry import Registry
from chargewire.store.database import Database
from chargewire.store.ocpp_registry_store import OcppRegistryStore
from chargewire.store.outage import is_unavailable

logger = logging.getLogger(__name__)

# How long a stopping tap waits for its queued events to be published before it gives them up.
_DRAIN_TIMEOUT_S = 10.0
# How often the registry writes when each charge point was last heard from.
_LAST_MESSAGE_FLUSH_S = 5.0
# How often stopped sessions older than `ocpp_stopped_sessions_kept_days` are removed.
_SESSION_EXPIRY_S = 3600.0
# After a failed expiry (the database down, say), the first retry; it doubles up to `_SESSION_EXPIRY_S`.
_EXPIRY_RETRY_FIRST_S = 30.0
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class TapAddress:
    """Where the tap listens."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> TapAddress:
        """`HOST:PORT` (IPv6 hosts in brackets)."""
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(f"The OCPP tap's listen address must be HOST:PORT, not {text!r}.")
        return cls(host.strip("[]"), int(port))


def tap_name(settings: Settings) -> str:
    """This tap among those sharing the database: `ocpp_tap_name`, by default its host and listening address.

    A tap that moves to another host, or behind another address, keeps its charge points under the name set.
    """
    return settings.ocpp_tap_name or f"{socket.gethostname()} {settings.ocpp_listen}"


def proxy_settings(settings: Settings) -> ProxySettings:
    """The proxy's settings from the service's: upstream, limits and TLS."""
    if not settings.ocpp_upstream.startswith(("ws://", "wss://")):
        raise ConfigurationError("CHARGEWIRE_OCPP_UPSTREAM must be the CSMS's ws:// or wss:// URL.")
    server_ssl = None
    if settings.ocpp_tls_cert_file is not None:
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(settings.ocpp_tls_cert_file, settings.ocpp_tls_key_file)
    upstream_ssl = ssl.create_default_context(cafile=settings.ocpp_upstream_ca_file)
    return ProxySettings(
        upstream=settings.ocpp_upstream,
        max_frame_bytes=settings.ocpp_max_frame_bytes,
        open_timeout_s=settings.ocpp_open_timeout_s,
        ping_interval_s=settings.ocpp_ping_interval_s or None,
        missed_heartbeats=settings.ocpp_missed_heartbeats,
        server_ssl=server_ssl,
        upstream_ssl=upstream_ssl,
    )


async def run_tap(
    settings: Settings, publisher: Publisher, database: Database, stop: asyncio.Event, registry: CollectorRegistry
) -> None:
    """Listen at `ocpp_listen`, relay to `ocpp_upstream` and publish what passes, until `stop` is set.

    The identity registry lives in `database` (the service's). The tap's metrics go into `registry` (the API's,
    when `serve` runs the tap) and are also served at `/metrics` on the tap's own port.
    """
    address = TapAddress.parse(settings.ocpp_listen)
    proxy_config = proxy_settings(settings)
    store = OcppRegistryStore(database)
    await import_legacy_state(settings, store)
    identities = Registry(store, tap_name(settings))
    await identities.starting()
    metrics = TapMetrics()
    registry.register(metrics)
    pipeline = EventPipeline(
        identities,
        publisher.publish,
        metrics,
        max_waiting=settings.ocpp_max_waiting,
        max_batch=publisher.max_batch,
        long_term_unavailable_s=settings.ocpp_long_term_unavailable_s,
    )
    publishing = asyncio.create_task(pipeline.run())
    flushing = asyncio.create_task(_flush_regularly(identities, metrics))
    kept_s = settings.ocpp_stopped_sessions_kept_days * _SECONDS_PER_DAY
    expiring = asyncio.create_task(_expire_regularly(identities, kept_s, metrics))
    proxy = OcppProxy(proxy_config, pipeline, metrics, lambda: generate_latest(registry))
    try:
        server = await proxy.serve(address.host, address.port)
        logger.info("OCPP tap listening on %s:%s, relaying to %s", address.host, address.port, settings.ocpp_upstream)
        await stop.wait()
        server.close(close_connections=True)
        await server.wait_closed()
        await proxy.aclose()
        await pipeline.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(publishing), _DRAIN_TIMEOUT_S)
    finally:
        for task in (publishing, flushing, expiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        registry.unregister(metrics)
        try:
            await identities.flush()
        except Exception as error:  # the database may be down as the tap stops
            logger.warning("OCPP tap: the charge points' last messages were not written as it stopped: %s", error)


async def _flush_regularly(identities: Registry, metrics: TapMetrics) -> None:
    """Write the last messages' times every few seconds; through an outage they wait for the next flush."""
    failing = False
    while True:
        await asyncio.sleep(_LAST_MESSAGE_FLUSH_S)
        try:
            await identities.flush()
        except Exception as error:
            metrics.registry_failures += 1
            if not is_unavailable(error):
                logger.exception("OCPP tap: could not write the charge points' last messages; trying again")
            elif not failing:
                logger.error("OCPP tap: the database is unavailable (%s); last messages are written later", error)
            failing = True
            continue
        if failing:
            logger.warning("OCPP tap: the charge points' last messages are written again")
        failing = False


async def _expire_regularly(identities: Registry, kept_s: float, metrics: TapMetrics) -> None:
    """Remove old stopped sessions now and every `_SESSION_EXPIRY_S`; a failure is retried sooner, backing off."""
    retry_s = _EXPIRY_RETRY_FIRST_S
    while True:
        try:
            expired = await identities.expire_stopped(kept_s)
        except Exception as error:
            metrics.registry_failures += 1
            if retry_s == _EXPIRY_RETRY_FIRST_S:  # once per failing streak
                logger.error("OCPP tap: could not remove old stopped sessions (%s); trying again", error)
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, _SESSION_EXPIRY_S)
            continue
        if expired:
            logger.info("OCPP tap: removed %d old stopped sessions", expired)
        retry_s = _EXPIRY_RETRY_FIRST_S
        await asyncio.sleep(_SESSION_EXPIRY_S)
