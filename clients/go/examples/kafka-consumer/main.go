// Command kafka-consumer is an example consumer (franz-go) for a chargewire Kafka subscription: every record
// carries the same headers as a webhook (X-Signature, webhook-id, webhook-timestamp, webhook-signature, ...)
// over the record's value, so it is verified exactly like a webhook before it is trusted.
//
//	KAFKA_BROKERS=localhost:9092 KAFKA_TOPIC=chargewire CHARGEWIRE_SIGNING_SECRETS=whsec_... go run .
package main

import (
	"context"
	"log"
	"os"
	"strings"
	"time"

	chargewire "github.com/chargewire/chargewire/clients/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recordHeaders reads a record's headers (a repeated header keeps its last value).
func recordHeaders(record *kgo.Record) chargewire.Headers {
	headers := make(map[string]string, len(record.Headers))
	for _, header := range record.Headers {
		headers[header.Key] = string(header.Value)
	}
	return chargewire.MapHeaders(headers)
}

func main() {
	verifier := &chargewire.Verifier{
		Secrets:  strings.Fields(os.Getenv("CHARGEWIRE_SIGNING_SECRETS")),
		APIToken: os.Getenv("CHARGEWIRE_API_TOKEN"),
		// A consumer may read a record long after it was produced (lag, a replay from the start of the topic),
		// so the webhook's 5-minute window would refuse good records; the topic's retention bounds the age.
		Tolerance: 7 * 24 * time.Hour,
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(getenv("KAFKA_BROKERS", "localhost:9092"), ",")...),
		kgo.ConsumerGroup(getenv("KAFKA_GROUP", "chargewire-receiver")),
		kgo.ConsumeTopics(getenv("KAFKA_TOPIC", "chargewire")),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	for {
		fetches := client.PollFetches(context.Background())
		fetches.EachRecord(func(record *kgo.Record) {
			event, err := verifier.VerifyEvent(record.Value, recordHeaders(record))
			if err != nil {
				// Not from chargewire, or changed on the way: log it, never act on it.
				log.Printf("refused record at offset %d: %v", record.Offset, err)
				return
			}
			log.Printf("%d %s (%T)", record.Offset, event.EventName(), event)
		})
	}
}

func getenv(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
