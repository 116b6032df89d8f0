package main

import "syscall"

// groupAttr starts the child as the leader of a process group of its own.
// Should redislock itself die (SIGKILL), the kernel kills the child, which
// would otherwise run on after the lease it relied on expires.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER of prctl(2).
const prSetChildSubreaper = 36

// adoptOrphans makes the processes that the child leaves behind
// redislock's children rather than init's, so that reapGroup can collect
// them once killed: a zombie still counts as a member of its group.
func adoptOrphans() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapGroup collects the exited processes of group pgid that redislock
// adopted. Call it only after the group's leader was waited for, so that
// its exit status goes to exec.Cmd.Wait.
func reapGroup(pgid int) {
	for range 1000 { // bounded: a group has far fewer zombies
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
