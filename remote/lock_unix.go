//go:build unix

package remote

import (
	"errors"
	"os"
	"syscall"
)

// renameWhileLocked: Unix renames an open file.
const renameWhileLocked = true

// tryLock takes an exclusive lock on f without waiting, and reports
// whether it got it. flock(2) locks conflict between two opens of one file
// within a process too, so it guards goroutines as well as processes.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
