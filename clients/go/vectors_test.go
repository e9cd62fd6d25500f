package chargewire

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"
)

type vectorCase struct {
	Name       string            `json:"name"`
	Check      string            `json:"check"`
	BodyBase64 string            `json:"body_base64"`
	Headers    map[string]string `json:"headers"`
	APIToken   string            `json:"api_token"`
	Secrets    []string          `json:"secrets"`
	Now        int64             `json:"now"`
	Tolerance  int64             `json:"tolerance_s"`
	Expected   struct {
		Valid  bool    `json:"valid"`
		Reason *string `json:"reason"`
	} `json:"expected"`
}

func TestEveryVectorReachesItsVerdict(t *testing.T) {
	raw, err := os.ReadFile("../test-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no vectors")
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			body, _ := base64.StdEncoding.DecodeString(c.BodyBase64)
			headers := MapHeaders(c.Headers)
			var err error
			if c.Check == "x-signature" {
				err = VerifyXSignature(body, headers, c.APIToken)
			} else {
				err = VerifyWebhookSignature(body, headers, c.Secrets, time.Duration(c.Tolerance)*time.Second, time.Unix(c.Now, 0))
			}
			want := Reason("")
			if c.Expected.Reason != nil {
				want = Reason(*c.Expected.Reason)
			}
			if got := ReasonOf(err); got != want || (err != nil) != !c.Expected.Valid {
				t.Fatalf("got %q (%v), want %q", got, err, want)
			}
		})
	}
}
