//go:build !linux

package history

var base int64

// SharedClock reports whether Now is comparable between processes.
const SharedClock = false
