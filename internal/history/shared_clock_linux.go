package history

import "golang.org/x/sys/unix"

// SharedNow returns CLOCK_MONOTONIC in nanoseconds, read afresh on every
// call, for records compared between processes. [Now] adds an offset taken
// from two clock readings at start-up; a process preempted between them
// (seen under -race on loaded machines: up to 0.9 ms) reads behind the
// others for its whole life, which makes handovers between processes look
// like overlaps.
func SharedNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("history: clock_gettime: " + err.Error())
	}
	return ts.Nano()
}
