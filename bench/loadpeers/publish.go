package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// paceConnections is how many connections the publisher may hold; past them, sends wait in the client for a
// free one (and count as late), as aiohttp's connection limit made the Python publisher do before.
const paceConnections = 64

// startDelay leaves time to set up before the first scheduled send.
const startDelay = 200 * time.Millisecond

// plan is one open-loop run: `rate` events/s for `seconds`, `batch` events per POST, numbered from `first`.
type plan struct {
	url      string
	token    string
	rate     float64
	seconds  float64
	batch    int
	first    int
	template []byte // the rest of each event: a JSON object with fields besides the two per-event ones
}

// report is what the benchmark reads from stdout; the field names are those of bench.paced.PacedRun.
type report struct {
	Published  map[string]float64 `json:"published"` // latency tag -> scheduled send time (CLOCK_MONOTONIC s)
	IngestMs   []float64          `json:"ingest_ms"` // scheduled send -> answer read, per POST
	LagMs      []float64          `json:"lag_ms"`    // how late each POST left
	Rejected   int                `json:"rejected"`  // events of POSTs answered other than 202, or not at all
	CPUSeconds float64            `json:"cpu_s"`     // this process, from just before the first scheduled send to the last answer
}

// post is what became of one scheduled POST.
type post struct {
	at       time.Time
	lag      time.Duration
	answered time.Time
	accepted bool
}

func runPublisher(args []string, out io.Writer) error {
	p, err := parsePlan(args)
	if err != nil {
		return err
	}
	clock, err := newMonoClock()
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(publish(p, newClient(), clock))
}

func parsePlan(args []string) (plan, error) {
	flags := flag.NewFlagSet("publish", flag.ContinueOnError)
	var p plan
	var template string
	flags.StringVar(&p.url, "url", "", "chargewire's base URL")
	flags.StringVar(&p.token, "token", "", "an API token that may publish")
	flags.Float64Var(&p.rate, "rate", 200, "events per second")
	flags.Float64Var(&p.seconds, "seconds", 20, "how long to publish")
	flags.IntVar(&p.batch, "batch", 1, "events per request: 1 posts an object, more post an array")
	flags.IntVar(&p.first, "first", 0, "the number of the first event")
	flags.StringVar(&template, "template", "", "a JSON object: every event's fields but sessionId and externalSessionId")
	if err := flags.Parse(args); err != nil {
		return plan{}, err
	}
	p.template = []byte(template)
	var fields map[string]json.RawMessage
	switch {
	case p.url == "" || p.token == "":
		return plan{}, errors.New("give -url and -token")
	case p.rate <= 0 || p.seconds <= 0 || p.batch < 1:
		return plan{}, errors.New("-rate and -seconds must be positive, -batch at least 1")
	case json.Unmarshal(p.template, &fields) != nil || len(fields) == 0:
		return plan{}, errors.New("-template must be a JSON object with at least one field")
	}
	return p, nil
}

func newClient() *http.Client {
	transport := &http.Transport{
		MaxConnsPerHost:     paceConnections,
		MaxIdleConnsPerHost: paceConnections,
		DisableCompression:  true,
	}
	return &http.Client{Transport: transport, Timeout: 120 * time.Second}
}

// publish sends the plan's POSTs on a fixed clock, each from its own goroutine, never waiting for answers.
func publish(p plan, client *http.Client, clock monoClock) report {
	posts := make([]post, int(math.Round(p.seconds*p.rate/float64(p.batch))))
	var answers sync.WaitGroup
	cpuBefore := cpuSeconds()
	start := time.Now().Add(startDelay)
	for tick := range posts {
		at := start.Add(time.Duration(float64(tick*p.batch) / p.rate * float64(time.Second)))
		if delay := time.Until(at); delay > 0 {
			time.Sleep(delay)
		}
		posts[tick] = post{at: at, lag: time.Since(at)}
		body := requestBody(p, tick)
		answers.Add(1)
		go func(sent *post) {
			defer answers.Done()
			sent.accepted = send(client, p, body)
			sent.answered = time.Now()
		}(&posts[tick])
	}
	answers.Wait()
	result := summarise(p, posts, clock)
	result.CPUSeconds = cpuSeconds() - cpuBefore
	return result
}

// sendFailure tells of the first send that got no answer: when the server is gone, every send fails alike.
var sendFailure sync.Once

// send POSTs one body and reads the answer to its end (so the connection goes back to the pool).
func send(client *http.Client, p plan, body []byte) bool {
	request, err := http.NewRequest(http.MethodPost, p.url+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		panic(err) // the URL was checked when the plan was made
	}
	request.Header.Set("Authorization", "Bearer "+p.token)
	request.Header.Set("Content-Type", "application/json")
	response, err := client.Do(request)
	if err != nil {
		sendFailure.Do(func() {
			fmt.Fprintln(os.Stderr, "loadpeers: publish (the first failed send; all count as rejected):", err)
		})
		return false
	}
	defer response.Body.Close()
	if _, err := io.Copy(io.Discard, response.Body); err != nil {
		return false
	}
	return response.StatusCode == http.StatusAccepted
}

// requestBody is the POST of one tick: its event, or a JSON array of its `batch` events.
func requestBody(p plan, tick int) []byte {
	first := p.first + tick*p.batch
	if p.batch == 1 {
		return eventBody(nil, p.template, first)
	}
	body := []byte{'['}
	for n := first; n < first+p.batch; n++ {
		if n > first {
			body = append(body, ',')
		}
		body = eventBody(body, p.template, n)
	}
	return append(body, ']')
}

// eventBody appends event number n: about 1 KB of meter values whose externalSessionId is its latency tag.
func eventBody(body, template []byte, n int) []byte {
	body = fmt.Appendf(body, `{"sessionId":%d,"externalSessionId":%q,`, 700_000+n%500, latencyTag(n))
	return append(body, bytes.TrimSpace(template)[1:]...) // the template's fields and closing brace
}

// latencyTag is what the receiver times an event by (bench.paced.latency_tag makes the same).
func latencyTag(n int) string {
	return "lat-" + strconv.Itoa(n)
}

func summarise(p plan, posts []post, clock monoClock) report {
	result := report{
		Published: make(map[string]float64, len(posts)*p.batch),
		IngestMs:  make([]float64, 0, len(posts)),
		LagMs:     make([]float64, 0, len(posts)),
	}
	for tick, sent := range posts {
		result.LagMs = append(result.LagMs, milliseconds(sent.lag))
		result.IngestMs = append(result.IngestMs, milliseconds(sent.answered.Sub(sent.at)))
		first := p.first + tick*p.batch
		for n := first; n < first+p.batch; n++ {
			if sent.accepted {
				result.Published[latencyTag(n)] = clock.seconds(sent.at)
			} else {
				result.Rejected++
			}
		}
	}
	return result
}

func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
