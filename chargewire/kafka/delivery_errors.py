"""How the Kafka channel names a failed attempt: librdkafka's errors, and what the attempt raised, as typed errors.

The channel returns failures as typed errors in the `AttemptResult`, never raised:

| error_class             | raised as | when                                                                        |
|-------------------------|-----------|-----------------------------------------------------------------------------|
| `authentication`        | retryable | the brokers refused the SASL credentials (ends the attempt when reported)   |
| `authorization`         | retryable | ACLs deny writing to the topic or the cluster                               |
| `unknown_topic`         | retryable | the cluster has no such topic (after `topic_wait_s`, 2 s by default)        |
| `unreachable`           | retryable | no broker answered: connection refused, name not resolved, connect timeout  |
| `tls`                   | retryable | TLS handshake failed: broker certificate not trusted, client one refused    |
| `timeout`               | retryable | no acknowledgement within `message_timeout_s`, no connection error to blame |
| `kafka`                 | retryable | any other librdkafka or broker error; a response the connector cannot read  |
| `message_too_large`     | permanent | the record exceeds the producer's or the broker's size limit                |
| `kafka_config_rejected` | permanent | librdkafka or the connector's TLS refuses the settings as the producer opens|
|                         |           | (a client key that is not its certificate's, a PEM it cannot read)          |
| `invalid_target`        | permanent | no topic or brokers; librdkafka rejects a record's settings                 |
| `secret_undecryptable`  | retryable | its SASL password or client key do not decrypt under this secret key        |
| `blocked_address`       | permanent | a bootstrap or advertised broker is, or resolves to, a non-public address,  |
|                         |           | before the attempt or when librdkafka connects (`connector`)                |
| `signing`               | permanent | a signing secret that is not `whsec_` + base64                              |
| `internal`              | retryable | a bug in chargewire; logged with its traceback                              |
| `held_back`             | retryable | not produced: an earlier record of the same stream run failed (`OrderFence`)|

Why authentication and unknown topics are retryable: the operator fixes them on the cluster (creates the
topic, the user or its ACL) without touching the subscription, and the next scheduled attempt then succeeds;
a subscription that keeps failing is disabled after `disable_after_failing_s` like a dead webhook. A record
too large is refused the same way every time, so it is permanent; so are settings librdkafka refuses, until
the subscription is edited (its failed deliveries are kept for resend; the refusal is logged once per cluster
configuration). Every failure ends within seconds: see `cluster_producer` for how connection errors cut an
attempt short.
"""

from __future__ import annotations

import re

from confluent_kafka import KafkaError

from chargewire.channels.address_guard import BlockedAddress
from chargewire.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError, SecretUndecryptable
from chargewire.kafka.acks import ClusterRefused, ProduceFailed

_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE})
_UNKNOWN_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})
_AUTHENTICATION = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
_AUTHORIZATION = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED})
_UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
# Outcomes that say only that the record did not make it; the producer's connection error says why.
_UNEXPLAINED = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._DESTROY,
    }
)
_INVALID_SETTINGS = frozenset({KafkaError._INVALID_ARG, KafkaError._INVALID_TYPE, KafkaError._NOT_IMPLEMENTED})
# librdkafka names the address it connected to ("ipv4#10.0.0.5:9092"): not for the subscriber to learn.
_RESOLVED_ADDRESS = re.compile(r"\bipv[46]#\S+")
_TLS_WORDS = ("ssl routines", "ssl handshake", "certificate", "tls alert")


def refusal_like(refusal: DeliveryError) -> DeliveryError:
    """A new error like `refusal` (raising the same one again would grow its traceback on every attempt)."""
    if isinstance(refusal, BlockedAddress):
        return BlockedAddress(refusal.message, address=refusal.address, reason=refusal.reason)
    return type(refusal)(refusal.message, error_class=refusal.error_class)


def _is_connection_error(failed: ProduceFailed) -> bool:
    """Whether a record failed for want of a broker connection, which the connector's failure explains."""
    codes = {failed.error.code(), *(() if failed.cause is None else (failed.cause.code(),))}
    return bool(codes & (_UNEXPLAINED | _UNREACHABLE))


def delivery_error(error: KafkaError, cause: KafkaError | None = None) -> DeliveryError:
    """The typed delivery error for a librdkafka error, explained by the producer's connection error if vague."""
    code = error.code()
    if code in _UNEXPLAINED and cause is not None:
        return delivery_error(cause)
    text = _RESOLVED_ADDRESS.sub("(address)", error.str())
    if code in _TOO_LARGE:
        return PermanentDeliveryError(
            f"The record is too large for the cluster: {text}.", error_class="message_too_large"
        )
    if code in _UNKNOWN_TOPIC:
        return RetryableDeliveryError(f"The cluster has no such topic: {text}.", error_class="unknown_topic")
    if code in _AUTHENTICATION:
        return RetryableDeliveryError(f"The brokers refused the credentials: {text}.", error_class="authentication")
    if code in _AUTHORIZATION:
        return RetryableDeliveryError(f"The brokers denied access: {text}.", error_class="authorization")
    if code == KafkaError._SSL or (code == KafkaError._TRANSPORT and any(w in text.lower() for w in _TLS_WORDS)):
        return RetryableDeliveryError(f"TLS failed: {text}.", error_class="tls")
    if code in _UNREACHABLE:
        # Fixed text: whether a port refused or stayed silent is a port scan's answer, whatever the address.
        return RetryableDeliveryError("No broker could be reached.", error_class="unreachable")
    if code in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._QUEUE_FULL):
        return RetryableDeliveryError(f"The brokers did not acknowledge in time: {text}.", error_class="timeout")
    if code in _INVALID_SETTINGS:
        return PermanentDeliveryError(f"The Kafka settings are not valid: {text}.", error_class="invalid_target")
    return RetryableDeliveryError(f"Kafka error {error.name()}: {text}.", error_class="kafka")


def translate(exc: Exception) -> DeliveryError:
    """The delivery error for whatever the attempt raised: librdkafka's errors are mapped here and only here."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SecretUndecryptable):
        return exc.as_delivery_error()
    if isinstance(exc, ClusterRefused):
        message = f"The subscription's Kafka settings were refused: {exc.error.str()}."
        return PermanentDeliveryError(message, error_class="kafka_config_rejected")
    if isinstance(exc, ProduceFailed):
        if exc.failure is not None and _is_connection_error(exc):
            return refusal_like(exc.failure)
        return delivery_error(exc.error, exc.cause)
    if isinstance(exc, TimeoutError):
        return RetryableDeliveryError("The brokers did not acknowledge in time.", error_class="timeout")
    return RetryableDeliveryError(f"Internal error: {exc!r}.", error_class="internal")
