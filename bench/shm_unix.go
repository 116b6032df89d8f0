//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// mapShared maps the first shmSize bytes of the file at path, shared
// between processes, as a sharedState for atomic operations: the worker
// processes of a multi-process run count holders in it to catch
// overlapping holds, and leave there when the last holder released.
func mapShared(path string) (*sharedState, func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, shmSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return (*sharedState)(unsafe.Pointer(&b[0])), func() { _ = syscall.Munmap(b) }, nil
}
