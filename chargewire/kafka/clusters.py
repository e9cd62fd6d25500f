"""What makes two Kafka subscriptions' producers interchangeable, and the librdkafka settings it maps to.

A `ClusterConfig` is the key of the producer pool (`producers`): brokers, security protocol, SASL
mechanism and credentials, TLS certificates and compression. Subscriptions whose targets reduce to the same
configuration share one producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import certifi

from chargewire.models import KafkaSecrets, KafkaTarget

ClientSettings = dict[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything that makes two subscriptions' producers interchangeable; the key of the producer pool."""

    brokers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    compression_codec: str = "gzip"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ca_certificate: str | None = field(default=None, repr=False)
    client_certificate: str | None = field(default=None, repr=False)
    client_key: str | None = field(default=None, repr=False)

    @classmethod
    def for_target(cls, target: KafkaTarget, secrets: KafkaSecrets | None) -> ClusterConfig:
        """The configuration of `target`, keeping only the fields its security protocol uses."""
        protocol = target.security_protocol.upper()
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        return cls(
            # Sorted and deduplicated: the same cluster listed in another order shares the producer.
            brokers=tuple(sorted(set(target.brokers))),
            security_protocol=protocol,
            compression_codec=target.compression_codec.lower(),
            sasl_mechanism=(target.sasl_mechanism or "PLAIN").upper() if sasl else None,
            sasl_username=target.sasl_username if sasl else None,
            sasl_password=secrets.sasl_password if sasl and secrets else None,
            ca_certificate=target.ca_certificate if tls else None,
            client_certificate=target.client_certificate if tls else None,
            client_key=secrets.client_key if tls and secrets else None,
        )

    @property
    def label(self) -> str:
        """A description for logs, without any secret."""
        who = f" as {self.sasl_username} ({self.sasl_mechanism})" if self.sasl_mechanism else ""
        return f"{self.security_protocol}://{','.join(self.brokers)}{who}"

    def client_settings(self) -> ClientSettings:
        """The librdkafka settings for this cluster (security and compression; no timeouts or callbacks)."""
        settings: ClientSettings = {
            "bootstrap.servers": ",".join(self.brokers),
            "security.protocol": self.security_protocol,
            "compression.type": self.compression_codec,
        }
        if self.sasl_mechanism is not None:
            settings["sasl.mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                settings["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                settings["sasl.password"] = self.sasl_password
        if self.security_protocol.endswith("SSL"):
            # Without a CA of its own, trust the same public roots as the webhook channel, on every machine.
            if self.ca_certificate:
                settings["ssl.ca.pem"] = self.ca_certificate
            else:
                settings["ssl.ca.location"] = certifi.where()
            if self.client_certificate:
                settings["ssl.certificate.pem"] = self.client_certificate
            if self.client_key:
                settings["ssl.key.pem"] = self.client_key
        return settings
