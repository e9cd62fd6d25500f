package main

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// clockMonotonic is Linux's CLOCK_MONOTONIC: one clock for every process on the machine.
const clockMonotonic = 1

// monoClock turns Go's monotonic time readings into CLOCK_MONOTONIC seconds.
//
// Go reads CLOCK_MONOTONIC for the monotonic part of time.Now but keeps it relative to the process start,
// so one raw clock_gettime, taken between two time.Now calls, ties the two together; every later stamp is
// then a cheap time.Now. The offset is exact to the time between those calls (well under a microsecond).
type monoClock struct {
	base        time.Time
	baseSeconds float64
}

func newMonoClock() (monoClock, error) {
	before := time.Now()
	seconds, err := rawMonotonicSeconds()
	after := time.Now()
	if err != nil {
		return monoClock{}, err
	}
	return monoClock{base: before.Add(after.Sub(before) / 2), baseSeconds: seconds}, nil
}

// seconds is t on CLOCK_MONOTONIC, in seconds (what Python's time.monotonic would have read at t).
func (c monoClock) seconds(t time.Time) float64 {
	return c.baseSeconds + t.Sub(c.base).Seconds()
}

func rawMonotonicSeconds() (float64, error) {
	var now syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&now)), 0)
	if errno != 0 {
		return 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", errno)
	}
	return float64(now.Sec) + float64(now.Nsec)/1e9, nil
}

// cpuSeconds is the CPU time (user + system) this process has used so far.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		panic(err) // only for a bad pointer or `who`, neither of which can happen here
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}
