//go:build !unix

package csvfile

import "os"

// tryLock does not lock on systems without flock: run one writer per file.
func tryLock(*os.File) error { return nil }
