//go:build !unix

package atomicfile

// isDirSyncUnsupported: folders cannot be opened for syncing off Unix
// (Windows answers "access is denied"); renames are durable there once
// the file is synced.
func isDirSyncUnsupported(error) bool { return true }
