//go:build windows

package remote

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// renameWhileLocked: Windows renames no open file.
const renameWhileLocked = false

// lockOffset is where the lock byte lies: far past any file's end, so the
// lock keeps other downloads out without blocking writes to the file.
const lockOffset = 1 << 62

// tryLock takes an exclusive lock on f without waiting, and reports
// whether it got it.
func tryLock(f *os.File) (bool, error) {
	ol := &windows.Overlapped{Offset: lockOffset & 0xffffffff, OffsetHigh: lockOffset >> 32}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) {
	ol := &windows.Overlapped{Offset: lockOffset & 0xffffffff, OffsetHigh: lockOffset >> 32}
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, ol)
}
