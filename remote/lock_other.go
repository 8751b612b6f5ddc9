//go:build !unix && !windows

package remote

import "os"

// renameWhileLocked: no file locks here; rename as on Unix.
const renameWhileLocked = true

// tryLock: this platform has no file locks. Downloads of one file are kept
// apart by their caller (the worker never handles one job folder twice at
// once); two processes may still collide.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
