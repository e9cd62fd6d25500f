// Package chargewire verifies chargewire notifications and reads them as typed payloads.
//
// Two signatures ride on every notification: X-Signature (hex HMAC-SHA256 of the body keyed by the API
// token that created the subscription) and the Standard Webhooks trio webhook-id, webhook-timestamp and
// webhook-signature (keyed by the subscription's whsec_ secret, and covering the id and time, so a
// captured request cannot be replayed later). The rules, and the reasons a notification is refused, are
// the same in every language of the receiver kit; clients/test-vectors.json pins them.
package chargewire

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may lie from now.
const DefaultTolerance = 300 * time.Second

// Reason says which rule a refused notification broke.
type Reason string

// The reasons, the same words in every client of the receiver kit.
const (
	MissingHeader      Reason = "missing_header"
	MalformedTimestamp Reason = "malformed_timestamp"
	TimestampTooOld    Reason = "timestamp_too_old"
	TimestampTooNew    Reason = "timestamp_too_new"
	MalformedSignature Reason = "malformed_signature"
	SignatureMismatch  Reason = "signature_mismatch"
)

// VerificationError is returned when a signature or timestamp does not check out.
type VerificationError struct {
	Reason  Reason
	Message string
}

func (e *VerificationError) Error() string { return e.Message }

// ReasonOf is the Reason of a verification error, or "" for any other error.
func ReasonOf(err error) Reason {
	var refused *VerificationError
	if errors.As(err, &refused) {
		return refused.Reason
	}
	return ""
}

// Headers looks a header up by name, whatever the case of its key; ok is false when it is absent.
type Headers func(name string) (value string, ok bool)

// MapHeaders reads headers from a plain map (Kafka record headers, a test).
func MapHeaders(m map[string]string) Headers {
	return func(name string) (string, bool) {
		if value, ok := m[name]; ok {
			return value, true
		}
		for key, value := range m {
			if strings.EqualFold(key, name) {
				return value, true
			}
		}
		return "", false
	}
}

var (
	xSignaturePattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	v1Pattern         = regexp.MustCompile(`^v1,([A-Za-z0-9+/]{43}=)$`)
	timestampPattern  = regexp.MustCompile(`^[0-9]{1,15}$`)
)

func refuse(reason Reason, format string, args ...any) error {
	return &VerificationError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func header(headers Headers, name string) (string, error) {
	value, ok := headers(name)
	if !ok {
		return "", refuse(MissingHeader, "missing header %s", name)
	}
	return value, nil
}

// VerifyXSignature checks X-Signature against the API token that created the subscription.
func VerifyXSignature(body []byte, headers Headers, apiToken string) error {
	offered, err := header(headers, "X-Signature")
	if err != nil {
		return err
	}
	if !xSignaturePattern.MatchString(offered) {
		return refuse(MalformedSignature, "X-Signature is not 64 lowercase hex digits")
	}
	mac := hmac.New(sha256.New, []byte(apiToken))
	mac.Write(body)
	if subtle.ConstantTimeCompare([]byte(offered), []byte(hex.EncodeToString(mac.Sum(nil)))) != 1 {
		return refuse(SignatureMismatch, "X-Signature does not match the body")
	}
	return nil
}

// VerifyWebhookSignature checks the Standard Webhooks trio with one whsec_ secret or several (during a
// rotation): any v1 entry made with any secret is enough, and the timestamp must lie within tolerance of now.
func VerifyWebhookSignature(body []byte, headers Headers, secrets []string, tolerance time.Duration, now time.Time) error {
	if len(secrets) == 0 {
		return errors.New("give at least one signing secret")
	}
	id, err := header(headers, "webhook-id")
	if err != nil {
		return err
	}
	stamp, err := header(headers, "webhook-timestamp")
	if err != nil {
		return err
	}
	signatures, err := header(headers, "webhook-signature")
	if err != nil {
		return err
	}
	if err := checkTimestamp(stamp, tolerance, now); err != nil {
		return err
	}
	offered, err := v1Signatures(signatures)
	if err != nil {
		return err
	}
	matched := false
	for _, secret := range secrets {
		key, err := SecretKey(secret)
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + stamp + "."))
		mac.Write(body)
		expected := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		// Every pair is compared, so the time taken does not tell which entry came close.
		for _, candidate := range offered {
			matched = subtle.ConstantTimeCompare(expected, candidate) == 1 || matched
		}
	}
	if !matched {
		return refuse(SignatureMismatch, "webhook-signature does not match")
	}
	return nil
}

// SecretKey is the HMAC key of a whsec_ secret: the bytes its base64 part encodes (padding optional).
func SecretKey(secret string) ([]byte, error) {
	encoded := strings.TrimRight(strings.TrimPrefix(secret, "whsec_"), "=")
	key, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil || len(key) == 0 {
		return nil, errors.New("a signing secret must be whsec_ followed by base64")
	}
	return key, nil
}

func checkTimestamp(text string, tolerance time.Duration, now time.Time) error {
	if !timestampPattern.MatchString(text) {
		return refuse(MalformedTimestamp, "webhook-timestamp is not a number of seconds")
	}
	seconds, _ := strconv.ParseInt(text, 10, 64)
	limit := int64(tolerance / time.Second)
	switch {
	case seconds < now.Unix()-limit:
		return refuse(TimestampTooOld, "webhook-timestamp is too far in the past (a replay?)")
	case seconds > now.Unix()+limit:
		return refuse(TimestampTooNew, "webhook-timestamp is too far in the future")
	}
	return nil
}

func v1Signatures(value string) ([][]byte, error) {
	var found [][]byte
	for _, entry := range strings.Fields(value) {
		if match := v1Pattern.FindStringSubmatch(entry); match != nil {
			found = append(found, []byte(match[1]))
		}
	}
	if len(found) == 0 {
		return nil, refuse(MalformedSignature, "webhook-signature has no well-formed v1 entry")
	}
	return found, nil
}
