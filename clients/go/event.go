package chargewire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Event is the typed payload of one notification: *BootNotification, *CircuitChangedEvent, ... or
// *UnknownEvent for a name this version of the kit does not know yet.
type Event interface {
	EventName() string
}

// UnknownEvent keeps a notification whose name is not in this version's catalog, whole.
type UnknownEvent struct {
	Name    string
	Payload map[string]any
}

// EventName is the notification name of the payload.
func (e *UnknownEvent) EventName() string { return e.Name }

// ErrMalformedEvent is returned for a body that is not a JSON object with a notification name.
var ErrMalformedEvent = errors.New("the body is not a JSON object with a notification name")

// ParseEvent reads a verified body as the payload type of its notification name.
func ParseEvent(body []byte) (Event, error) {
	var head map[string]any
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	name, ok := head["notification"].(string)
	if !ok {
		return nil, ErrMalformedEvent
	}
	make, known := eventTypes[name]
	if !known {
		return &UnknownEvent{Name: name, Payload: head}, nil
	}
	event := make()
	if err := json.Unmarshal(body, event); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	return event, nil
}
