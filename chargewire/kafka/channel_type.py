"""The Kafka channel's description: the `kafka` target (topic, brokers, TLS and SASL), produced to by `KafkaChannel`.

The body's `kafka` section follows the Notifications API v2.0, plus chargewire's `caCertificate`,
`clientCertificate` and `clientKey`. `saslPassword` and `clientKey` are the secret half, stored encrypted and
shown as null; a replace that sends them as null keeps the stored ones.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib.resources import files
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from prometheus_client.registry import Collector

from chargewire.channels.base import Channel
from chargewire.channels.registry import (
    ChannelContext,
    ChannelType,
    FieldErrors,
    FormSection,
    PageParts,
    ParsedTarget,
    first_value,
    register_channel,
)
from chargewire.config import Settings
from chargewire.dispatch.retry_policy import kafka_retry_floor_s
from chargewire.kafka.connector import shared_connector
from chargewire.kafka.connector_metrics import ConnectorCollector
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription, split_broker
from chargewire.storable import storable

COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
_TOPIC = re.compile(TOPIC_PATTERN)
_TEXT_FIELDS = ("topic", "saslUsername", "saslPassword", "caCertificate", "clientCertificate", "clientKey")
_CHOICE_FIELDS = ("compressionCodec", "securityProtocol", "saslMechanism")
_LIST_SEPARATORS = re.compile(r"[\s,]+")


def parse_kafka(value: object, stored: object, errors: FieldErrors) -> ParsedTarget | None:
    """The `kafka` section of a body; `stored` (KafkaSecrets) fills the secrets a replace sends as null."""
    if not isinstance(value, Mapping):
        errors.add("kafka", "The kafka object is required when via is kafka.")
        return None
    kept = stored if isinstance(stored, KafkaSecrets) else KafkaSecrets()
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
    password = _optional_text(value, "saslPassword", errors) or kept.sasl_password
    if not protocol.startswith("SASL_"):
        # The original accepts SASL fields with any protocol; they mean nothing without SASL, so none are kept.
        username = password = None
    else:
        for name, given in (("saslUsername", username), ("saslPassword", password)):
            if not given:
                errors.add(f"kafka.{name}", f"The {name} field is required when securityProtocol is {protocol}.")
    ca = _optional_text(value, "caCertificate", errors)
    certificate = _optional_text(value, "clientCertificate", errors)
    key = _optional_text(value, "clientKey", errors) or (kept.client_key if certificate else None)
    _check_tls(protocol, ca, certificate, key, errors)
    if len(errors.by_field) > before:
        return None
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
    return ParsedTarget({"kafka": target}, KafkaSecrets(sasl_password=password, client_key=key))


def _brokers(value: object, errors: FieldErrors) -> list[str]:
    if not isinstance(value, list) or not value:
        errors.add("kafka.brokers", "The brokers field must list at least one broker as host:port.")
        return []
    for index, broker in enumerate(value):
        try:
            split_broker(broker)
        except ValueError:
            errors.add(f"kafka.brokers.{index}", "Each broker must be host:port with a port from 1 to 65535.")
    return [str(broker) for broker in value]


def _choice(value: Mapping[str, Any], name: str, allowed: Sequence[str], default: str, errors: FieldErrors) -> str:
    chosen = value.get(name)
    if chosen is None:
        return default
    if chosen not in allowed:
        errors.add(f"kafka.{name}", f"The {name} field must be one of: {', '.join(allowed)}.")
        return default
    return str(chosen)


def _optional_text(value: Mapping[str, Any], name: str, errors: FieldErrors) -> str | None:
    text = value.get(name)
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not storable(text):
        errors.add(f"kafka.{name}", f"The {name} field must be a string without NUL characters.")
        return None
    return text


def _check_tls(protocol: str, ca: str | None, certificate: str | None, key: str | None, errors: FieldErrors) -> None:
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


def kafka_hosts(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each readable broker's host, for the address guard; the parser judges the rest."""
    brokers = section.get("brokers")
    hosts: list[tuple[str, str]] = []
    for index, broker in enumerate(brokers if isinstance(brokers, list) else []):
        with contextlib.suppress(ValueError):
            hosts.append((f"kafka.brokers.{index}", split_broker(broker)[0]))
    return hosts


def render_kafka(subscription: Subscription) -> dict[str, Any] | None:
    """The `kafka` section of a response; the secrets are always null."""
    kafka = subscription.kafka
    if kafka is None:
        return None
    return {
        "topic": kafka.topic,
        "brokers": list(kafka.brokers),
        "compressionCodec": kafka.compression_codec,
        "securityProtocol": kafka.security_protocol,
        "saslMechanism": kafka.sasl_mechanism,
        "saslUsername": kafka.sasl_username,
        "saslPassword": None,
        "caCertificate": kafka.ca_certificate,
        "clientCertificate": kafka.client_certificate,
        "clientKey": None,
    }


def dump_kafka_secrets(secrets: object) -> dict[str, Any] | None:
    """The SASL password and client key as the stored JSON document; None when there is neither."""
    if not isinstance(secrets, KafkaSecrets) or (secrets.sasl_password is None and secrets.client_key is None):
        return None
    return asdict(secrets)


def load_kafka_secrets(document: Mapping[str, Any]) -> KafkaSecrets:
    """The stored JSON document back as KafkaSecrets."""
    return KafkaSecrets(**document)


def _client(context: ChannelContext) -> Channel:
    # The producer and its Kafka client library load with the first client: describing, checking and storing a
    # target (the CLI, the API's create) needs neither.
    from chargewire.kafka.channel import KafkaChannel
    from chargewire.kafka.producers import KafkaProducers

    settings = context.settings
    return KafkaChannel(
        context.secrets_for,
        producers=KafkaProducers(
            message_timeout_s=settings.kafka_message_timeout_s,
            connect_timeout_s=settings.kafka_connect_timeout_s,
            linger_ms=settings.kafka_linger_ms,
            gzip_level=settings.kafka_gzip_level,
        ),
        allow_networks=settings.delivery_allow_networks,
    )


def _max_in_flight(settings: Settings) -> int:
    return settings.kafka_max_in_flight_per_subscription


def _collectors() -> list[Collector]:
    # One connector serves every Kafka producer of the process, so its figures are the process's.
    return [ConnectorCollector(shared_connector())]


def _retry_floor_s(settings: Settings) -> float:
    return kafka_retry_floor_s(settings.kafka_message_timeout_s)


def _form_body(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    kafka: dict[str, Any] = {name: first_value(form, f"kafka.{name}").strip() or None for name in _TEXT_FIELDS}
    kafka.update({name: first_value(form, f"kafka.{name}") or None for name in _CHOICE_FIELDS})
    kafka["brokers"] = [part for part in _LIST_SEPARATORS.split(first_value(form, "kafka.brokers")) if part]
    return kafka


def _form_values(subscription: Subscription) -> dict[str, Any]:
    kafka = subscription.kafka
    if kafka is None:
        return {}
    return {
        "kafka.topic": kafka.topic,
        "kafka.brokers": "\n".join(kafka.brokers),
        "kafka.compressionCodec": kafka.compression_codec,
        "kafka.securityProtocol": kafka.security_protocol,
        "kafka.saslMechanism": kafka.sasl_mechanism or "PLAIN",
        "kafka.saslUsername": kafka.sasl_username or "",
        "kafka.caCertificate": kafka.ca_certificate or "",
        "kafka.clientCertificate": kafka.client_certificate or "",
    }


def _name(subscription: Subscription) -> str:
    return subscription.kafka.topic if subscription.kafka else ""


_PAGE_TARGET = (
    '<span class="mono">{{ subscription.kafka.topic }}</span> '
    '<span class="muted">@ {{ subscription.kafka.brokers|join(", ") }}</span>'
)
_PAGE_FACTS = (
    "<dt>Compression</dt><dd>{{ subscription.kafka.compression_codec }}</dd>\n"
    "<dt>Security</dt><dd>{{ subscription.kafka.security_protocol }}"
    '{% if subscription.kafka.security_protocol.startswith("SASL") %} · {{ subscription.kafka.sasl_mechanism }}'
    " as {{ subscription.kafka.sasl_username }}{% endif %}</dd>"
)

KAFKA = ChannelType(
    name="kafka",
    title="Kafka",
    label="Kafka (a record on your topic)",
    parse=parse_kafka,
    render=render_kafka,
    client=_client,
    max_in_flight=_max_in_flight,
    target_hosts=kafka_hosts,
    retry_floor_s=_retry_floor_s,
    # Kafka keeps one entity's records in order: what was published after a failed record waits for its retry.
    keeps_order=True,
    collectors=_collectors,
    dump_secrets=dump_kafka_secrets,
    load_secrets=load_kafka_secrets,
    form=FormSection(
        fields=(
            "kafka.topic",
            "kafka.brokers",
            "kafka.compressionCodec",
            "kafka.securityProtocol",
            "kafka.saslMechanism",
            "kafka.saslUsername",
            "kafka.saslPassword",
            "kafka.caCertificate",
            "kafka.clientCertificate",
            "kafka.clientKey",
        ),
        template=files("chargewire.kafka").joinpath("templates/form.html").read_text(),
        body=_form_body,
        values=_form_values,
        defaults={
            "kafka.compressionCodec": "gzip",
            "kafka.securityProtocol": "PLAINTEXT",
            "kafka.saslMechanism": "PLAIN",
        },
        secret_fields=("kafka.saslPassword", "kafka.clientKey"),
        choices={
            "kafka.compressionCodec": COMPRESSION_CODECS,
            "kafka.securityProtocol": SECURITY_PROTOCOLS,
            "kafka.saslMechanism": SASL_MECHANISMS,
        },
        indexed_labels={"kafka.brokers": "Broker"},
    ),
    pages=PageParts(target=_PAGE_TARGET, name=_name, facts=_PAGE_FACTS),
)
register_channel(KAFKA)
