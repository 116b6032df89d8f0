//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// mapCounter maps the first 4 bytes of the file at path, shared between
// processes, as an int32 for atomic operations: the worker processes of a
// multi-process run count holders in it to catch overlapping holds.
func mapCounter(path string) (*int32, func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, 8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return (*int32)(unsafe.Pointer(&b[0])), func() { _ = syscall.Munmap(b) }, nil
}
