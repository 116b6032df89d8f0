//go:build !linux

package main

import "syscall"

// childAttr has no portable equivalent of Linux's parent-death signal; the
// harness stops its children itself.
func childAttr() *syscall.SysProcAttr { return nil }
