package io.chargewire.receiver.examples;

import io.chargewire.receiver.ChargewireEvent;
import io.chargewire.receiver.HeaderLookup;
import io.chargewire.receiver.UnknownEvent;
import io.chargewire.receiver.Verifier;
import io.chargewire.receiver.WebhookVerificationException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * An example Kafka consumer for a chargewire Kafka subscription: every record carries the same headers as a
 * webhook (X-Signature, webhook-id, webhook-timestamp, webhook-signature, ...) over the record's value, so
 * it is verified exactly like a webhook before it is trusted.
 *
 * <pre>KAFKA_BROKERS=localhost:9092 KAFKA_TOPIC=chargewire CHARGEWIRE_SIGNING_SECRETS=whsec_... java ... KafkaConsumerExample</pre>
 */
public final class KafkaConsumerExample {
  private KafkaConsumerExample() {}

  /** The record's headers as a lookup (the last value of a repeated header wins, as Kafka's lastHeader). */
  static HeaderLookup headers(ConsumerRecord<byte[], byte[]> record) {
    return name -> {
      for (Header header : record.headers()) {
        if (header.key().equalsIgnoreCase(name)) {
          return Optional.of(new String(record.headers().lastHeader(header.key()).value(), StandardCharsets.UTF_8));
        }
      }
      return Optional.empty();
    };
  }

  public static void main(String[] args) {
    List<String> secrets = Arrays.stream(System.getenv().getOrDefault("CHARGEWIRE_SIGNING_SECRETS", "").split("\\s+"))
        .filter(s -> !s.isEmpty()).toList();
    // A consumer may read a record long after it was produced (lag, a replay from the start of the topic), so the
    // webhook's 5-minute window would refuse good records; the topic's retention bounds the age instead.
    Verifier verifier =
        new Verifier(secrets, System.getenv("CHARGEWIRE_API_TOKEN"), Duration.ofDays(7), Clock.systemUTC());
    Properties config = new Properties();
    config.put("bootstrap.servers", System.getenv().getOrDefault("KAFKA_BROKERS", "localhost:9092"));
    config.put("group.id", System.getenv().getOrDefault("KAFKA_GROUP", "chargewire-receiver"));
    config.put("auto.offset.reset", "earliest");
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      consumer.subscribe(List.of(System.getenv().getOrDefault("KAFKA_TOPIC", "chargewire")));
      while (true) {
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofSeconds(1))) {
          try {
            ChargewireEvent event = verifier.verifyEvent(record.value(), headers(record));
            String kind = event instanceof UnknownEvent ? " (unknown to this version)" : "";
            System.out.println(record.offset() + " " + event.notification() + kind);
          } catch (WebhookVerificationException refused) {
            // Not from chargewire, or changed on the way: log it, never act on it.
            System.err.println("refused record at offset " + record.offset() + ": " + refused.reason().code());
          }
        }
      }
    }
  }
}
