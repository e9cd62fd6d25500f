"""Reading a subscription body in the Notifications API's shape, with errors named by the contract's fields.

The body is the v2.0 one (`via`, `notifications`, `webhook.callbackUrl`, `kafka.*`) plus chargewire's optional
extensions (`enabled`, `description`, `filter`, `retrySchedule`, and `kafka.caCertificate`,
`kafka.clientCertificate`, `kafka.clientKey`). Unknown fields are ignored, as an old client may send more.
Checks that need I/O (the callback address guard) happen in the service, not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from chargewire.catalog import closest_event_names, load_event_types
from chargewire.errors import ValidationFailed
from chargewire.filters import check_filter
from chargewire.models import KafkaSecrets, KafkaTarget, Via, split_broker
from chargewire.services.storable import storable

MAX_CALLBACK_URL_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 1000
MAX_EVENT_NAME_LENGTH = 100
MAX_RETRY_STEPS = 20
MAX_RETRY_DELAY_S = 7 * 24 * 3600.0
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
_TOPIC = re.compile(TOPIC_PATTERN)


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A checked subscription body.

    `extensions` holds only the optional fields the client sent (by model field name), so a replace keeps
    the ones an old client does not know about. A `None` secret in `kafka_secrets` means "not sent".
    """

    via: Via
    notifications: tuple[str, ...]
    callback_url: str | None = None
    kafka: KafkaTarget | None = None
    kafka_secrets: KafkaSecrets | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)


class _Errors:
    """Collects messages by field path, so one 422 reports every problem of a body."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, where: str, message: str) -> None:
        self.by_field.setdefault(where, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationFailed(self.by_field)


def parse_subscription(body: Mapping[str, Any], stored: KafkaSecrets | None = None) -> SubscriptionSpec:
    """Check a v2.0 body; raises ValidationFailed whose fields are named as in the contract (`kafka.brokers.0`).

    `stored` are the secrets of the subscription being replaced: responses show `saslPassword` and `clientKey`
    as null, so a client that reads, edits and writes back a subscription keeps them by sending null.
    """
    errors = _Errors()
    via = _via(body.get("via"), errors)
    notifications = parse_event_names(body.get("notifications"), "notifications", errors)
    callback_url = kafka = secrets = None
    if via is Via.WEBHOOK:
        callback_url = _webhook(body.get("webhook"), errors)
    elif via is Via.KAFKA:
        kafka, secrets = _kafka(body.get("kafka"), stored or KafkaSecrets(), errors)
    extensions = _extensions(body, errors)
    if via is None or errors.by_field:
        raise ValidationFailed(errors.by_field)
    return SubscriptionSpec(via, notifications, callback_url, kafka, secrets, extensions)


def parse_event_names(value: object, where: str, errors: _Errors | None = None) -> tuple[str, ...]:
    """A non-empty list of distinct, known event names; errors name the offending index (`notifications.2`)."""
    own = errors is None
    errors = errors or _Errors()
    if value is None:
        errors.add(where, f"The {where} field is required.")
    elif not isinstance(value, list):
        errors.add(where, f"The {where} field must be an array of event names.")
    elif not value:
        errors.add(where, f"The {where} field must name at least one event.")
    else:
        known = load_event_types()
        seen: set[str] = set()
        for index, name in enumerate(value):
            path = f"{where}.{index}"
            if not isinstance(name, str):
                errors.add(path, "Each event name must be a string.")
            elif name in seen:
                errors.add(path, f"{name!r} is listed more than once.")
            elif len(name) > MAX_EVENT_NAME_LENGTH:
                errors.add(path, f"Unknown event: names are at most {MAX_EVENT_NAME_LENGTH} characters.")
            elif name not in known:
                suggestions = closest_event_names(name)
                hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
                errors.add(path, f"Unknown event {name!r}.{hint}")
            if isinstance(name, str):
                seen.add(name)
    if own:
        errors.raise_if_any()
    return tuple(value) if isinstance(value, list) and not errors.by_field else ()


def _via(value: object, errors: _Errors) -> Via | None:
    if value is None:
        errors.add("via", "The via field is required.")
        return None
    if value not in (Via.WEBHOOK.value, Via.KAFKA.value):
        errors.add("via", "The via field must be one of: webhook, kafka.")
        return None
    return Via(value)


def _webhook(value: object, errors: _Errors) -> str | None:
    if not isinstance(value, Mapping):
        errors.add("webhook", "The webhook object is required when via is webhook.")
        return None
    url = value.get("callbackUrl")
    message = check_callback_url_syntax(url)
    if message:
        errors.add("webhook.callbackUrl", message)
        return None
    return str(url)


def check_callback_url_syntax(url: object) -> str | None:
    """What is wrong with a callback URL's form (scheme, host, length), or None when it is well formed."""
    if url is None or url == "":
        return "The callback url field is required."
    if not isinstance(url, str) or not storable(url):
        return "The callback url must be a string of printable characters."
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        return f"The callback url may not be greater than {MAX_CALLBACK_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return "The callback url must be a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The callback url must be an http or https URL with a host."
    if any(ch.isspace() for ch in url):
        return "The callback url must not contain white space."
    return None


def _kafka(value: object, stored: KafkaSecrets, errors: _Errors) -> tuple[KafkaTarget | None, KafkaSecrets | None]:
    if not isinstance(value, Mapping):
        errors.add("kafka", "The kafka object is required when via is kafka.")
        return None, None
    before = len(errors.by_field)
    topic = value.get("topic")
    if not isinstance(topic, str) or not topic:
        errors.add("kafka.topic", "The topic field is required.")
    elif not _TOPIC.match(topic):
        errors.add("kafka.topic", "A topic is 1 to 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'.")
    brokers = _brokers(value.get("brokers"), errors)
    codec = _choice(value, "compressionCodec", COMPRESSION_CODECS, "gzip", errors)
    protocol = _choice(value, "securityProtocol", SECURITY_PROTOCOLS, "PLAINTEXT", errors)
    mechanism = _choice(value, "saslMechanism", SASL_MECHANISMS, "PLAIN", errors)
    username = _optional_text(value, "saslUsername", errors)
    password = _optional_text(value, "saslPassword", errors) or stored.sasl_password
    if not protocol.startswith("SASL_"):
        # The original accepts SASL fields with any protocol; they mean nothing without SASL, so none are kept.
        username = password = None
    else:
        for name, given in (("saslUsername", username), ("saslPassword", password)):
            if not given:
                errors.add(f"kafka.{name}", f"The {name} field is required when securityProtocol is {protocol}.")
    ca = _optional_text(value, "caCertificate", errors)
    certificate = _optional_text(value, "clientCertificate", errors)
    key = _optional_text(value, "clientKey", errors) or (stored.client_key if certificate else None)
    _check_tls(protocol, ca, certificate, key, errors)
    if len(errors.by_field) > before:
        return None, None
    target = KafkaTarget(
        topic=str(topic),
        brokers=tuple(brokers),
        compression_codec=codec,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        ca_certificate=ca,
        client_certificate=certificate,
    )
    return target, KafkaSecrets(sasl_password=password, client_key=key)


def _brokers(value: object, errors: _Errors) -> list[str]:
    if not isinstance(value, list) or not value:
        errors.add("kafka.brokers", "The brokers field must list at least one broker as host:port.")
        return []
    for index, broker in enumerate(value):
        try:
            split_broker(broker)
        except ValueError:
            errors.add(f"kafka.brokers.{index}", "Each broker must be host:port with a port from 1 to 65535.")
    return [str(broker) for broker in value]


def _choice(value: Mapping[str, Any], name: str, allowed: Sequence[str], default: str, errors: _Errors) -> str:
    chosen = value.get(name)
    if chosen is None:
        return default
    if chosen not in allowed:
        errors.add(f"kafka.{name}", f"The {name} field must be one of: {', '.join(allowed)}.")
        return default
    return str(chosen)


def _optional_text(value: Mapping[str, Any], name: str, errors: _Errors) -> str | None:
    text = value.get(name)
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not storable(text):
        errors.add(f"kafka.{name}", f"The {name} field must be a string without NUL characters.")
        return None
    return text


def _check_tls(protocol: str, ca: str | None, certificate: str | None, key: str | None, errors: _Errors) -> None:
    if (ca or certificate or key) and protocol not in ("SSL", "SASL_SSL"):
        errors.add("kafka.securityProtocol", "TLS certificates need securityProtocol SSL or SASL_SSL.")
    if bool(certificate) != bool(key):
        missing = "clientKey" if certificate else "clientCertificate"
        errors.add(f"kafka.{missing}", "The clientCertificate and clientKey fields are required together.")
    for name, pem in (("caCertificate", ca), ("clientCertificate", certificate)):
        if pem is not None:
            try:
                x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                errors.add(f"kafka.{name}", "Must be a PEM-encoded X.509 certificate.")
    if key is not None:
        try:
            load_pem_private_key(key.encode(), password=None)
        except (ValueError, TypeError):
            errors.add("kafka.clientKey", "Must be an unencrypted PEM-encoded private key.")


def _extensions(body: Mapping[str, Any], errors: _Errors) -> dict[str, Any]:
    sent: dict[str, Any] = {}
    if "enabled" in body:
        if isinstance(body["enabled"], bool):
            sent["enabled"] = body["enabled"]
        elif body["enabled"] is not None:
            errors.add("enabled", "The enabled field must be true or false.")
    if "description" in body:
        text = body["description"]
        if text is not None and (not isinstance(text, str) or len(text) > MAX_DESCRIPTION_LENGTH or not storable(text)):
            errors.add(
                "description", f"The description must be a string of at most {MAX_DESCRIPTION_LENGTH} characters."
            )
        else:
            sent["description"] = text or None
    if "filter" in body:
        try:
            if body["filter"] is not None:
                check_filter(body["filter"])
                if not storable(body["filter"]):
                    raise ValidationFailed({"filter": ["Filter values must be finite numbers and text without NUL."]})
            sent["filter"] = body["filter"] or None
        except ValidationFailed as failure:
            for where, messages in failure.errors.items():
                for message in messages:
                    errors.add(where, message)
    if "retrySchedule" in body and _retry_schedule_ok(body["retrySchedule"], errors):
        schedule = body["retrySchedule"]
        sent["retry_schedule_s"] = tuple(float(delay) for delay in schedule) if schedule is not None else None
    return sent


def _retry_schedule_ok(value: object, errors: _Errors) -> bool:
    if value is None:
        return True
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RETRY_STEPS:
        errors.add("retrySchedule", f"The retry schedule must list 1 to {MAX_RETRY_STEPS} delays in seconds.")
        return False
    ok = True
    for index, delay in enumerate(value):
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_RETRY_DELAY_S:
            message = f"Each delay must be a number of seconds from 0 to {MAX_RETRY_DELAY_S:.0f}."
            errors.add(f"retrySchedule.{index}", message)
            ok = False
    return ok
