package history

import "time"

// Now returns the recorder's clock in nanoseconds: the system's monotonic
// clock where the platform shares one between processes (Linux), so that
// timestamps from worker processes on one machine can be compared.
// Elsewhere it is monotonic within the process only.
//
// It reads Go's monotonic clock and adds the offset sampled at start-up, so
// a reading costs what time.Now costs.
func Now() int64 { return base + int64(time.Since(start)) }

var start = time.Now()
