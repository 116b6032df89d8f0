//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// signalGroup sends sig to every process of the process group pgid.
func signalGroup(pgid int, sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		_ = syscall.Kill(-pgid, s)
	}
}

// groupAlive reports whether the process group pgid has a process left.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
