//go:build !unix

package main

// mapCounter has no shared memory here: each process checks only its own
// goroutines for overlapping holds.
func mapCounter(string) (*int32, func(), error) { return new(int32), func() {}, nil }
