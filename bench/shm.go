package main

import "sync/atomic"

// sharedState is what the goroutines of a contention run share, in one
// process or, mapped from a file, across processes (page-aligned there, so
// the 64-bit field is aligned for atomics).
type sharedState struct {
	holders atomic.Int32 // holders now, counted inside each hold
	_       int32
	lastRel atomic.Int64 // wall clock (Unix ns) when the last holder began its release; 0: none yet
}

// shmSize is the size of the file a multi-process run maps.
const shmSize = 16
