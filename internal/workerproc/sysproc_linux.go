package workerproc

import "syscall"

// sysProcAttr makes the kernel kill a worker whose parent dies, so an
// interrupted test run leaves no worker behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
