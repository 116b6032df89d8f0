package main

import "syscall"

// childAttr puts a child process in its own process group, so a ctrl-C at
// the terminal reaches only this process, which then stops the child
// itself; and has the kernel kill the child if this process dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
