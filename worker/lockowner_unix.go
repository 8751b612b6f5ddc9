//go:build unix

package worker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockOwner is an Owner for processes on one machine that share a table:
// each holds an exclusive flock on a file named after its id in a shared
// folder, which the kernel releases when the process ends, however it ends
// (kill -9 included).
type LockOwner struct {
	dir, id string
	f       *os.File
}

// NewLockOwner takes a fresh identity in dir (created if needed), for
// example the job table's path plus ".workers".
func NewLockOwner(dir string) (*LockOwner, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	f, err := os.OpenFile(filepath.Join(dir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return &LockOwner{dir: dir, id: id, f: f}, nil
}

// ID returns this process's identity.
func (o *LockOwner) ID() string { return o.id }

// Alive reports whether the process with id still holds its lock.
func (o *LockOwner) Alive(id string) bool {
	if id == o.id {
		return true
	}
	if id == "" || filepath.Base(id) != id {
		return false
	}
	path := filepath.Join(o.dir, id+".lock")
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true
	}
	if err == nil {
		os.Remove(path) // its owner is gone: tidy up
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return false
}

// Close gives up the identity.
func (o *LockOwner) Close() error {
	os.Remove(o.f.Name())
	return o.f.Close()
}
