package worker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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
// example the job table's path plus ".workers". The last owner to close
// removes dir when it is empty (see Close); an owner created meanwhile
// makes it again.
func NewLockOwner(dir string) (*LockOwner, error) {
	var err error
	for range lockTries {
		var id string
		var l *flock.Flock
		id, l, err = tryLockOwner(dir)
		if err == nil {
			o := &LockOwner{dir: dir, id: id, lock: l}
			o.sweep()
			return o, nil
		}
		if !errors.Is(err, errLockRace) {
			return nil, err
		}
	}
	return nil, err
}

// errLockRace is a lock attempt that lost a race with another owner's
// Close (the folder removed) or sweep (the new file taken for a dead one's
// and removed): tried again under a new id.
var errLockRace = errors.New("lost a race with another owner")

// lockTries bounds the attempts of NewLockOwner that lose a race.
const lockTries = 10

// tryLockOwner makes dir, creates a lock file under a new id there and
// locks it.
func tryLockOwner(dir string) (string, *flock.Flock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Made by one owner and removed by another between MkdirAll's
			// stat and its mkdir.
			return "", nil, fmt.Errorf("%w: %w", errLockRace, err)
		}
		return "", nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	path := filepath.Join(dir, id+".lock")
	l := flock.New(path, flock.SetPermissions(0o644))
	ok, err := l.TryLock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The last owner to close removed the empty folder between
		// MkdirAll and the file's creation.
		return "", nil, fmt.Errorf("lock %s: %w: %w", path, errLockRace, err)
	case err != nil:
		return "", nil, fmt.Errorf("lock %s: %w", path, err)
	case !ok:
		// Another owner's sweep holds the new file for a dead owner's.
		l.Close()
		return "", nil, fmt.Errorf("lock %s: %w: held by another process", path, errLockRace)
	}
	// The sweep may also have removed the file before we locked it: the
	// lock must be on the file the path names.
	held, err1 := l.Stat()
	named, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, named) {
		l.Close()
		return "", nil, fmt.Errorf("lock %s: %w: the file was removed", path, errLockRace)
	}
	return id, l, nil
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

// Close gives up the identity, and removes the folder when no other
// owner's file is left in it. The folder is removed with rmdir, which
// fails on a folder that is not empty: an owner that created its file
// meanwhile keeps it (and one about to create it makes it again).
func (o *LockOwner) Close() error {
	os.Remove(o.lock.Path())
	err := o.lock.Unlock()
	os.Remove(o.dir) // fails, harmlessly, while other owners' files are there
	return err
}
