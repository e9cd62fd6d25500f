package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	chargewire "github.com/chargewire/chargewire/clients/go"
)

// counts is what the receiver saw since the last reset.
type counts struct {
	requests     int
	first, last  float64
	webhookIDs   map[string]struct{}
	arrivals     map[string]float64 // latency tag -> arrival (CLOCK_MONOTONIC s)
	repeatedTags int
	refused      map[chargewire.Reason]int // requests whose signatures did not verify, by reason
}

func newCounts() *counts {
	return &counts{
		webhookIDs: map[string]struct{}{},
		arrivals:   map[string]float64{},
		refused:    map[chargewire.Reason]int{},
	}
}

// receiver answers 202 to every webhook, counts requests, distinct webhook-ids and refused signatures, and
// keeps the arrival time of each body that carries a latency tag (its first string value starting "lat-").
//
// A refused signature is counted, not answered with an error, so that the delivery path stays the one
// measured; the benchmark reports the count. Verifying both signatures with the receiver kit (clients/go)
// is what an integrator's receiver does, and proves chargewire signed every message it sent.
type receiver struct {
	clock    monoClock
	mu       sync.Mutex
	seen     *counts
	verifier *chargewire.Verifier // nil until the benchmark posts the subscription's keys to /_keys
}

// noKeys is the refusal reason of a webhook that arrived before the receiver knew the keys to check it.
const noKeys chargewire.Reason = "no_keys"

// keys is the body of POST /_keys: the subscription's signing secret and the API token that created it.
type keys struct {
	SigningSecret string `json:"signingSecret"`
	APIToken      string `json:"apiToken"`
}

func runReceiver(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: loadpeers receive PORT")
	}
	if _, err := strconv.Atoi(args[0]); err != nil {
		return errors.New("the port must be a number")
	}
	clock, err := newMonoClock()
	if err != nil {
		return err
	}
	return http.ListenAndServe("127.0.0.1:"+args[0], newReceiver(clock).routes())
}

func newReceiver(clock monoClock) *receiver {
	return &receiver{clock: clock, seen: newCounts()}
}

func (r *receiver) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_stats", r.stats)
	mux.HandleFunc("GET /_arrivals", r.arrivals)
	mux.HandleFunc("POST /_reset", r.reset)
	mux.HandleFunc("POST /_keys", r.setKeys)
	mux.HandleFunc("POST /", r.receive)
	return mux
}

func (r *receiver) receive(w http.ResponseWriter, request *http.Request) {
	body, err := io.ReadAll(request.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := r.clock.seconds(time.Now())
	r.mu.Lock()
	verifier := r.verifier
	r.mu.Unlock()
	refusal := refusalOf(verifier, body, request.Header)
	r.mu.Lock()
	r.seen.record(now, request.Header.Get("webhook-id"), latencyTagIn(body), refusal)
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// refusalOf is why the message's signatures do not verify, or "" when they do.
func refusalOf(verifier *chargewire.Verifier, body []byte, header http.Header) chargewire.Reason {
	if verifier == nil {
		return noKeys
	}
	err := verifier.Verify(body, func(name string) (string, bool) {
		values := header.Values(name)
		if len(values) == 0 {
			return "", false
		}
		return values[0], true
	})
	if err == nil {
		return ""
	}
	if reason := chargewire.ReasonOf(err); reason != "" {
		return reason
	}
	return chargewire.Reason(err.Error())
}

func (c *counts) record(now float64, webhookID string, tag string, refusal chargewire.Reason) {
	c.requests++
	if c.first == 0 {
		c.first = now
	}
	c.last = now
	if webhookID != "" {
		c.webhookIDs[webhookID] = struct{}{}
	}
	if refusal != "" {
		c.refused[refusal]++
	}
	if tag == "" {
		return
	}
	if _, repeated := c.arrivals[tag]; repeated {
		c.repeatedTags++
	} else {
		c.arrivals[tag] = now
	}
}

var latencyTagStart = []byte(`"lat-`)

// latencyTagIn is the first JSON string in body that starts with "lat-", without its quotes; "" if none.
func latencyTagIn(body []byte) string {
	at := bytes.Index(body, latencyTagStart)
	if at < 0 {
		return ""
	}
	end := bytes.IndexByte(body[at+1:], '"')
	if end < 0 {
		return ""
	}
	return string(body[at+1 : at+1+end])
}

func (r *receiver) stats(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seen
	writeJSON(w, map[string]any{
		"requests":      seen.requests,
		"unique":        len(seen.webhookIDs),
		"tagged":        len(seen.arrivals),
		"repeated_tags": seen.repeatedTags,
		"refused":       seen.refused,
		"first":         seen.first,
		"last":          seen.last,
		"now":           r.clock.seconds(time.Now()),
	})
}

func (r *receiver) arrivals(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	writeJSON(w, r.seen.arrivals)
}

func (r *receiver) reset(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	r.seen = newCounts()
	r.mu.Unlock()
	writeJSON(w, map[string]any{})
}

func (r *receiver) setKeys(w http.ResponseWriter, request *http.Request) {
	var given keys
	if err := json.NewDecoder(request.Body).Decode(&given); err != nil || given.SigningSecret == "" || given.APIToken == "" {
		http.Error(w, "give signingSecret and apiToken", http.StatusBadRequest)
		return
	}
	verifier := &chargewire.Verifier{Secrets: []string{given.SigningSecret}, APIToken: given.APIToken}
	r.mu.Lock()
	r.verifier = verifier
	r.mu.Unlock()
	writeJSON(w, map[string]any{})
}

func writeJSON(w http.ResponseWriter, value any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(value); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
