package worker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"
)

// LockOwner is an Owner for processes on one machine that share a table:
// each holds an exclusive lock (flock on Unix, LockFileEx on Windows) on a
// file named after its id in a shared folder, which the system releases
// when the process ends, however it ends (kill -9 included).
type LockOwner struct {
	dir, id string
	lock    *flock.Flock
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
	l := flock.New(filepath.Join(dir, id+".lock"), flock.SetPermissions(0o644))
	ok, err := l.TryLock()
	if err == nil && !ok {
		err = fmt.Errorf("held by another process")
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Path(), err)
	}
	o := &LockOwner{dir: dir, id: id, lock: l}
	o.sweep()
	return o, nil
}

// sweep removes the lock files of processes that are gone (killed ones
// leave theirs), so the folder holds one file per live process. Rows a
// gone process owned are taken over whether or not its file is there.
func (o *LockOwner) sweep() {
	names, _ := filepath.Glob(filepath.Join(o.dir, "*.lock"))
	for _, name := range names {
		o.Alive(strings.TrimSuffix(filepath.Base(name), ".lock"))
	}
}

// ID returns this process's identity.
func (o *LockOwner) ID() string { return o.id }

// Alive reports whether the process with id still holds its lock. The
// lock file of a process that is gone is removed.
func (o *LockOwner) Alive(id string) bool {
	if id == o.id {
		return true
	}
	if id == "" || filepath.Base(id) != id {
		return false
	}
	path := filepath.Join(o.dir, id+".lock")
	// No O_CREATE: asking about an unknown id must not make its file.
	l := flock.New(path, flock.SetFlag(os.O_RDWR))
	ok, err := l.TryLock()
	if err != nil {
		return false // no such file: its owner is gone
	}
	if !ok {
		return true
	}
	os.Remove(path) // its owner is gone: tidy up
	l.Unlock()
	return false
}

// Lost is never closed: a process holds its lock until it ends.
func (o *LockOwner) Lost() <-chan struct{} { return nil }

// Close gives up the identity.
func (o *LockOwner) Close() error {
	os.Remove(o.lock.Path())
	return o.lock.Unlock()
}
