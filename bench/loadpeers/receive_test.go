package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	secret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	apiToken = "cw_bench"
)

type hook struct {
	id, body string
	signed   bool
}

func (h hook) request(t *testing.T, url string) *http.Request {
	t.Helper()
	request, err := http.NewRequest(http.MethodPost, url+"/hook", strings.NewReader(h.body))
	if err != nil {
		t.Fatal(err)
	}
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	request.Header.Set("webhook-id", h.id)
	request.Header.Set("webhook-timestamp", stamp)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	standard := hmac.New(sha256.New, key)
	standard.Write([]byte(h.id + "." + stamp + "." + h.body))
	x := hmac.New(sha256.New, []byte(apiToken))
	x.Write([]byte(h.body))
	request.Header.Set("X-Signature", hex.EncodeToString(x.Sum(nil)))
	if h.signed {
		request.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(standard.Sum(nil)))
	} else {
		request.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	}
	return request
}

func deliver(t *testing.T, request *http.Request) {
	t.Helper()
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusAccepted {
		t.Fatalf("answered %d", response.StatusCode)
	}
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	response, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	if err := json.NewDecoder(response.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func receiverWithKeys(t *testing.T) *httptest.Server {
	t.Helper()
	clock, err := newMonoClock()
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewServer(newReceiver(clock).routes())
	t.Cleanup(server.Close)
	given := `{"signingSecret": "` + secret + `", "apiToken": "` + apiToken + `"}`
	response, err := http.Post(server.URL+"/_keys", "application/json", strings.NewReader(given))
	if err != nil || response.StatusCode != http.StatusOK {
		t.Fatalf("keys not taken: %v %v", err, response)
	}
	return server
}

func TestReceiverCountsRepeatedWebhookIdsAndTagsAndTimesEachTagOnce(t *testing.T) {
	server := receiverWithKeys(t)
	before, _ := rawMonotonicSeconds()
	for _, h := range []hook{
		{"dlv_1", `{"data": {"externalSessionId": "lat-7"}}`, true},
		{"dlv_1", `{"data": {"externalSessionId": "lat-7"}}`, true},
		{"dlv_2", `{"data": {"externalSessionId": "lat-8"}}`, true},
		{"dlv_3", `{"data": {}}`, true},
	} {
		deliver(t, h.request(t, server.URL))
	}
	var stats map[string]any
	getJSON(t, server.URL+"/_stats", &stats)
	if stats["requests"] != 4.0 || stats["unique"] != 3.0 || stats["tagged"] != 2.0 || stats["repeated_tags"] != 1.0 {
		t.Fatalf("stats %v", stats)
	}
	if refused := stats["refused"].(map[string]any); len(refused) != 0 {
		t.Fatalf("refused %v", refused)
	}
	var arrivals map[string]float64
	getJSON(t, server.URL+"/_arrivals", &arrivals)
	if at := arrivals["lat-7"]; len(arrivals) != 2 || at < before || at > stats["now"].(float64) {
		t.Fatalf("arrivals %v, not between %.6f and %.6f", arrivals, before, stats["now"])
	}
}

func TestReceiverCountsAWebhookWhoseSignatureDoesNotMatchAsRefused(t *testing.T) {
	server := receiverWithKeys(t)
	deliver(t, hook{"dlv_9", `{"data": {"externalSessionId": "lat-9"}}`, false}.request(t, server.URL))
	var stats struct{ Refused map[string]int }
	getJSON(t, server.URL+"/_stats", &stats)
	if stats.Refused["signature_mismatch"] != 1 {
		t.Fatalf("refused %v", stats.Refused)
	}
}

func TestReceiverForgetsWhatItSawWhenReset(t *testing.T) {
	server := receiverWithKeys(t)
	deliver(t, hook{"dlv_1", `{"data": {"externalSessionId": "lat-1"}}`, true}.request(t, server.URL))
	response, err := http.Post(server.URL+"/_reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	var stats map[string]any
	getJSON(t, server.URL+"/_stats", &stats)
	if stats["requests"] != 0.0 || stats["tagged"] != 0.0 {
		t.Fatalf("stats after a reset %v", stats)
	}
}
