/**
 * An example Kafka consumer (kafkajs) for a chargewire Kafka subscription: every record carries the same
 * headers as a webhook (X-Signature, webhook-id, webhook-timestamp, webhook-signature, ...) over the record's
 * value, so it is verified exactly like a webhook before it is trusted.
 *
 *   KAFKA_BROKERS=localhost:9092 KAFKA_TOPIC=chargewire CHARGEWIRE_SIGNING_SECRETS=whsec_... node dist/examples/kafka-consumer.js
 */
import { Kafka } from "kafkajs";
import { UnknownEvent, Verifier, WebhookVerificationError } from "../src/index.js";

const verifier = new Verifier({
  signingSecrets: (process.env.CHARGEWIRE_SIGNING_SECRETS ?? "").split(/\s+/).filter(Boolean),
  apiToken: process.env.CHARGEWIRE_API_TOKEN || undefined,
  // A consumer may read a record long after it was produced (lag, a replay from the start of the topic), so the
  // webhook's 5-minute window would refuse good records; the topic's retention bounds the age instead.
  toleranceS: 7 * 24 * 3600,
});

/** kafkajs gives header values as Buffers (or arrays of them); the verifier wants text. */
function textHeaders(headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>): Record<string, string> {
  const text: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) text[name] = first.toString();
  }
  return text;
}

async function main(): Promise<void> {
  const kafka = new Kafka({ clientId: "chargewire-receiver", brokers: (process.env.KAFKA_BROKERS ?? "localhost:9092").split(",") });
  const consumer = kafka.consumer({ groupId: process.env.KAFKA_GROUP ?? "chargewire-receiver" });
  await consumer.connect();
  await consumer.subscribe({ topic: process.env.KAFKA_TOPIC ?? "chargewire", fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers = textHeaders(message.headers ?? {});
      try {
        const event = verifier.verifyEvent(message.value ?? Buffer.alloc(0), headers);
        const name = event instanceof UnknownEvent ? `${event.notification} (unknown)` : event.notification;
        console.log(`${headers["webhook-id"]} ${name}`);
      } catch (error) {
        // A record that fails verification is not from chargewire (or was changed): log it, never act on it.
        if (error instanceof WebhookVerificationError) console.warn(`refused record: ${error.reason}`);
        else throw error;
      }
    },
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
