package chargewire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func validVector(t *testing.T) vectorCase {
	raw, err := os.ReadFile("../test-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []vectorCase }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, c := range file.Cases {
		if c.Name == "standard webhooks valid" {
			return c
		}
	}
	t.Fatal("no valid vector")
	return vectorCase{}
}

func TestMiddlewareHandsTheVerifiedEventToTheHandlerAndRefusesATamperedOne(t *testing.T) {
	c := validVector(t)
	verifier := &Verifier{Secrets: c.Secrets, Now: func() time.Time { return time.Unix(c.Now, 0) }}
	var seen Event
	server := httptest.NewServer(verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = EventFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})))
	defer server.Close()
	body, _ := base64.StdEncoding.DecodeString(c.BodyBase64)
	post := func(payload []byte) *http.Response {
		request, _ := http.NewRequest(http.MethodPost, server.URL, bytes.NewReader(payload))
		for name, value := range c.Headers {
			request.Header.Set(name, value)
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		return response
	}
	if response := post(body); response.StatusCode != http.StatusNoContent {
		t.Fatalf("valid: got %d", response.StatusCode)
	}
	if _, ok := seen.(*SessionStartStopNotification); !ok {
		t.Fatalf("handler saw %#v", seen)
	}
	if response := post(append(body, ' ')); response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tampered: got %d", response.StatusCode)
	}
}
