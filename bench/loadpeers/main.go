// Command loadpeers is the load benchmark's peers (bench/load.py): an open-loop publisher and a webhook
// receiver, in Go so that they take little of the two cores chargewire is measured on.
//
//	loadpeers publish -url http://127.0.0.1:8000 -token cw_... -rate 2000 -seconds 20 -batch 1 -template '{...}'
//	loadpeers receive PORT
//
// Both stamp times on CLOCK_MONOTONIC (see clock.go), the clock Python's time.monotonic reads, so the
// benchmark subtracts a scheduled send time of the publisher from an arrival time of the receiver.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	// One P: a readied goroutine then runs on the thread that readied it, instead of waking a second thread to
	// spin for it. Against each other at 200 and 2,000 events/s this took a quarter off the receiver's CPU per
	// event and a tenth off the publisher's; neither needs a second core at these rates.
	runtime.GOMAXPROCS(1)
	if len(os.Args) < 2 {
		fail("usage: loadpeers publish [flags] | loadpeers receive PORT")
	}
	var err error
	switch os.Args[1] {
	case "publish":
		err = runPublisher(os.Args[2:], os.Stdout)
	case "receive":
		err = runReceiver(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: publish or receive", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "loadpeers:", message)
	os.Exit(2)
}
