package main

import (
	"math"
	"testing"
	"time"
)

func TestMonoClockReadsWhatClockGettimeReads(t *testing.T) {
	clock, err := newMonoClock()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	stamped := clock.seconds(time.Now())
	raw, err := rawMonotonicSeconds()
	if err != nil {
		t.Fatal(err)
	}
	// A clock of another origin would be off by seconds or more; 50 ms leaves room for a preempted test.
	if gap := raw - stamped; gap < -0.0001 || gap > 0.05 {
		t.Fatalf("a stamp taken just before clock_gettime is %.6f s away from it", gap)
	}
}

func TestCPUSecondsGrowWhenTheProcessWorks(t *testing.T) {
	before := cpuSeconds()
	sum := 0.0
	for i := 0; i < 20_000_000; i++ {
		sum += math.Sqrt(float64(i))
	}
	if cpuSeconds() <= before || sum == 0 {
		t.Fatal("the CPU time did not grow")
	}
}
