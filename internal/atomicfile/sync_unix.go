//go:build unix

package atomicfile

import (
	"errors"
	"syscall"
)

// isDirSyncUnsupported: some file systems (FUSE, some network mounts)
// refuse fsync on a folder.
func isDirSyncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
