package chargewire

import (
	"errors"
	"testing"
)

func TestKnownNameParsesIntoItsStruct(t *testing.T) {
	event, err := ParseEvent([]byte(`{"notification":"NetworkStatusNotification","chargePointId":1042,"networkStatus":"available","timestamp":"2026-11-24T08:15:30Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	status, ok := event.(*NetworkStatusNotification)
	if !ok || status.ChargePointID != 1042 || status.EventName() != "NetworkStatusNotification" {
		t.Fatalf("got %#v", event)
	}
}

func TestUnknownNameIsKeptAsUnknownEvent(t *testing.T) {
	event, err := ParseEvent([]byte(`{"notification":"charger.teleported","chargePointId":7}`))
	if err != nil {
		t.Fatal(err)
	}
	unknown, ok := event.(*UnknownEvent)
	if !ok || unknown.Name != "charger.teleported" || unknown.Payload["chargePointId"] != float64(7) {
		t.Fatalf("got %#v", event)
	}
}

func TestBodyWithoutNameIsMalformed(t *testing.T) {
	for _, body := range []string{`not json`, `[1]`, `{"chargePointId":7}`, `{"notification":3}`} {
		if _, err := ParseEvent([]byte(body)); !errors.Is(err, ErrMalformedEvent) {
			t.Fatalf("%s: got %v", body, err)
		}
	}
}
