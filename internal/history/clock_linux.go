package history

import (
	"time"

	"golang.org/x/sys/unix"
)

// base is CLOCK_MONOTONIC at the moment start was read: Go's monotonic
// readings come from that clock, so base plus the time since start is
// CLOCK_MONOTONIC now, comparable between processes.
var base = func() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("history: clock_gettime: " + err.Error())
	}
	return ts.Nano() - int64(time.Since(start))
}()

// SharedClock reports whether Now is comparable between processes.
const SharedClock = true
