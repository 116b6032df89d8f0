//go:build unix && !linux

package main

import "syscall"

// groupAttr starts the child as the leader of a process group of its own.
func groupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// adoptOrphans does nothing: orphans go to init, which reaps them.
func adoptOrphans() {}

// reapGroup does nothing; see adoptOrphans.
func reapGroup(int) {}
