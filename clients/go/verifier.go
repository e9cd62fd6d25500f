package chargewire

import (
	"errors"
	"time"
)

// Verifier holds one subscription's keys: its signing secrets (several during a rotation) and/or the API
// token that created it. The zero Tolerance means DefaultTolerance; a nil Now means time.Now.
type Verifier struct {
	Secrets   []string
	APIToken  string
	Tolerance time.Duration
	Now       func() time.Time
}

// Verify checks every signature for which a key is held.
func (v *Verifier) Verify(body []byte, headers Headers) error {
	if len(v.Secrets) == 0 && v.APIToken == "" {
		return errors.New("give the subscription's signing secret(s), its API token, or both")
	}
	if len(v.Secrets) > 0 {
		tolerance, now := v.Tolerance, time.Now
		if tolerance == 0 {
			tolerance = DefaultTolerance
		}
		if v.Now != nil {
			now = v.Now
		}
		if err := VerifyWebhookSignature(body, headers, v.Secrets, tolerance, now()); err != nil {
			return err
		}
	}
	if v.APIToken != "" {
		return VerifyXSignature(body, headers, v.APIToken)
	}
	return nil
}

// VerifyEvent verifies, then parses the body into the typed payload of its notification name.
func (v *Verifier) VerifyEvent(body []byte, headers Headers) (Event, error) {
	if err := v.Verify(body, headers); err != nil {
		return nil, err
	}
	return ParseEvent(body)
}
