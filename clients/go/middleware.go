package chargewire

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// MaxBodyBytes bounds what Middleware reads of a request body.
const MaxBodyBytes = 5 << 20

type eventKey struct{}

// HTTPHeaders reads headers from an http.Header.
func HTTPHeaders(h http.Header) Headers {
	return func(name string) (string, bool) {
		values := h.Values(name)
		if len(values) == 0 {
			return "", false
		}
		return values[0], true
	}
}

// Middleware verifies each request and parses its body before next runs; next finds the event with
// EventFrom. A bad signature gets 401 with the reason, a body that is no event 400.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		event, err := v.VerifyEvent(body, HTTPHeaders(r.Header))
		switch {
		case errors.Is(err, ErrMalformedEvent):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case ReasonOf(err) != "":
			http.Error(w, string(ReasonOf(err)), http.StatusUnauthorized)
			return
		case err != nil:
			http.Error(w, "receiver misconfigured", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), eventKey{}, event)))
	})
}

// EventFrom is the event Middleware verified and parsed for this request.
func EventFrom(ctx context.Context) (Event, bool) {
	event, ok := ctx.Value(eventKey{}).(Event)
	return event, ok
}
