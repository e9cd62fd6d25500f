package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
)

const template = `{"evseId": 3, "meterValues": [{"value": 1.5}]}`

// ingest is a stand-in for chargewire's POST /api/v1/events: it keeps every body and answers `status`.
type ingest struct {
	mu     sync.Mutex
	bodies [][]byte
	status int
}

func (i *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	i.mu.Lock()
	i.bodies = append(i.bodies, body)
	i.mu.Unlock()
	w.WriteHeader(i.status)
}

func publishTo(t *testing.T, status int, batch int) (report, *ingest) {
	t.Helper()
	server := &ingest{status: status}
	api := httptest.NewServer(server)
	defer api.Close()
	clock, err := newMonoClock()
	if err != nil {
		t.Fatal(err)
	}
	p := plan{url: api.URL, token: "cw_test", rate: 1000, seconds: 0.05, batch: batch, first: 40, template: []byte(template)}
	return publish(p, api.Client(), clock), server
}

func TestPublisherSendsEveryEventOnAFixedClockWithItsTag(t *testing.T) {
	result, server := publishTo(t, http.StatusAccepted, 1)
	if len(server.bodies) != 50 || len(result.Published) != 50 || result.Rejected != 0 {
		t.Fatalf("%d bodies, %d published, %d rejected", len(server.bodies), len(result.Published), result.Rejected)
	}
	events := map[any]map[string]any{} // by latency tag: the POSTs may arrive in any order
	for _, body := range server.bodies {
		var event map[string]any
		if err := json.Unmarshal(body, &event); err != nil {
			t.Fatal(err)
		}
		events[event["externalSessionId"]] = event
	}
	if first := events["lat-40"]; first["sessionId"] != 700_040.0 || first["evseId"] != 3.0 || len(events) != 50 {
		t.Fatalf("the first event is %v, of %d distinct", first, len(events))
	}
	if gap := result.Published["lat-41"] - result.Published["lat-40"]; gap < 0.000999 || gap > 0.001001 {
		t.Fatalf("events 40 and 41 are scheduled %.6f s apart, not 1 ms", gap)
	}
}

func TestPublisherPutsTenEventsInEachRequestOfABatch(t *testing.T) {
	result, server := publishTo(t, http.StatusAccepted, 10)
	var events []map[string]any
	if err := json.Unmarshal(server.bodies[0], &events); err != nil {
		t.Fatal(err)
	}
	tags := make([]string, 0, len(result.Published))
	for tag := range result.Published {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	if len(server.bodies) != 5 || len(events) != 10 || len(tags) != 50 || tags[0] != "lat-40" || tags[49] != "lat-89" {
		t.Fatalf("%d requests, %d events in one, tags %v", len(server.bodies), len(events), tags)
	}
}

func TestPublisherCountsTheEventsOfRefusedRequestsAsRejected(t *testing.T) {
	result, _ := publishTo(t, http.StatusUnprocessableEntity, 10)
	if result.Rejected != 50 || len(result.Published) != 0 || len(result.IngestMs) != 5 {
		t.Fatalf("%d rejected, %d published, %d answers", result.Rejected, len(result.Published), len(result.IngestMs))
	}
}

func TestPlanRefusesATemplateThatIsNotAnObjectWithFields(t *testing.T) {
	for _, text := range []string{"", "{}", "[1]", "{"} {
		if _, err := parsePlan([]string{"-url", "http://x", "-token", "t", "-template", text}); err == nil {
			t.Fatalf("the template %q was taken", text)
		}
	}
}

func TestPublisherCountsTheEventsOfSendsThatGetNoAnswerAsRejected(t *testing.T) {
	api := httptest.NewServer(&ingest{status: http.StatusAccepted})
	api.Close() // nobody listens on its address any more
	clock, err := newMonoClock()
	if err != nil {
		t.Fatal(err)
	}
	p := plan{url: api.URL, token: "cw_test", rate: 1000, seconds: 0.02, batch: 1, template: []byte(template)}
	result := publish(p, http.DefaultClient, clock)
	if result.Rejected != 20 || len(result.Published) != 0 {
		t.Fatalf("%d rejected, %d published", result.Rejected, len(result.Published))
	}
}
