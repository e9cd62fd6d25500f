// Command receiver is an example webhook receiver: net/http with the chargewire middleware, recording every
// verified event as one JSON line (the receiver kit's end-to-end test reads them).
//
//	CHARGEWIRE_SIGNING_SECRETS=whsec_... CHARGEWIRE_API_TOKEN=cw_... PORT=3000 go run ./examples/receiver
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"

	chargewire "github.com/chargewire/chargewire/clients/go"
)

func main() {
	verifier := &chargewire.Verifier{
		Secrets:  strings.Fields(os.Getenv("CHARGEWIRE_SIGNING_SECRETS")),
		APIToken: os.Getenv("CHARGEWIRE_API_TOKEN"),
	}
	record := recorder(os.Getenv("RECEIVER_RECORD_FILE"))
	mux := http.NewServeMux()
	mux.Handle("POST /hooks", verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := chargewire.EventFrom(r.Context())
		// The type switch is where an integration does its work; here every event is only recorded.
		typeName := strings.TrimPrefix(fmt.Sprintf("%T", event), "*chargewire.")
		if session, ok := event.(*chargewire.SessionStartStopNotification); ok {
			log.Printf("session %d stopped at meter %v", session.SessionID, session.MeterStop)
		}
		record(map[string]any{"notification": event.EventName(), "type": typeName, "webhookId": r.Header.Get("webhook-id")})
		// Answer fast; slow work belongs in a queue after this 204.
		w.WriteHeader(http.StatusNoContent)
	})))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	addr := "127.0.0.1:" + os.Getenv("PORT")
	log.Printf("listening on http://%s/hooks", addr)
	log.Fatal(http.ListenAndServe(addr, mux))
}

func recorder(path string) func(map[string]any) {
	var mu sync.Mutex
	return func(line map[string]any) {
		if path == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Print(err)
			return
		}
		defer file.Close()
		text, _ := json.Marshal(line)
		file.Write(append(text, '\n'))
	}
}
