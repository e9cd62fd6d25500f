"""An example Kafka consumer (confluent-kafka) for a chargewire Kafka subscription.

Every record carries the same headers as a webhook (X-Signature, webhook-id, webhook-timestamp,
webhook-signature, ...) over the record's value, so it is verified exactly like a webhook before it is trusted.

    KAFKA_BROKERS=localhost:9092 KAFKA_TOPIC=chargewire CHARGEWIRE_SIGNING_SECRETS=whsec_... python kafka_consumer.py
"""

from __future__ import annotations

import os

from confluent_kafka import Consumer

from chargewire.receiver import InvalidSignature, UnknownEvent, Verifier, event_name, record_headers

# A consumer may read a record long after it was produced (lag, a replay from the start of the topic), so the
# webhook's 5-minute window would refuse good records; the topic's retention bounds the age instead.
RECORD_TOLERANCE_S = 7 * 24 * 3600


def main() -> None:
    """Consume, verify and print until interrupted."""
    verifier = Verifier(
        signing_secrets=os.environ.get("CHARGEWIRE_SIGNING_SECRETS", "").split(),
        api_token=os.environ.get("CHARGEWIRE_API_TOKEN") or None,
        tolerance_s=RECORD_TOLERANCE_S,
    )
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BROKERS", "localhost:9092"),
            "group.id": os.environ.get("KAFKA_GROUP", "chargewire-receiver"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([os.environ.get("KAFKA_TOPIC", "chargewire")])
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            try:
                event = verifier.verify_event(message.value() or b"", record_headers(message.headers()))
            except InvalidSignature as refused:
                # Not from chargewire, or changed on the way: log it, never act on it.
                print(f"refused record at offset {message.offset()}: {refused.reason}")
                continue
            known = "" if not isinstance(event, UnknownEvent) else " (unknown to this version)"
            print(f"{message.offset()} {event_name(event)}{known}")
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
