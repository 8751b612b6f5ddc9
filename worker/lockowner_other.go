//go:build !unix

package worker

import "errors"

// LockOwner is not available on this system: run one manager per table.
type LockOwner struct{}

// NewLockOwner returns an error: file locks are used on Unix systems only.
func NewLockOwner(dir string) (*LockOwner, error) {
	return nil, errors.New("several workers on one table need Unix file locks")
}

// ID is empty.
func (o *LockOwner) ID() string { return "" }

// Alive reports false.
func (o *LockOwner) Alive(string) bool { return false }

// Close does nothing.
func (o *LockOwner) Close() error { return nil }
