// Package atomicfile replaces files so that a crash at any instant leaves
// either the old file or the new one, whole: the new content goes to a
// temporary file beside the target, is synced, renamed over the target,
// and the folder is synced so the rename itself survives a power loss.
//
// It is the one way this module writes a file that readers may see
// half-written otherwise: job tables (CSV, Parquet), job metadata, error
// logs, token stores. github.com/google/renameio does the first three
// steps but neither syncs the folder nor offers a step between the sync
// and the rename, where the CSV store records the new file's fingerprint,
// nor commits a file that another program (DuckDB's COPY) wrote.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// tempRE matches the names Write gives its temporary files: ".<base>.<digits>.tmp"
// (os.CreateTemp puts digits in place of its "*").
var tempRE = regexp.MustCompile(`^\..+\.[0-9]+\.tmp$`)

// IsTemp reports whether name (a file name without folders) is the name
// of one of Write's temporary files, which a process killed while it
// wrote leaves behind: such a file is never part of what was written.
func IsTemp(name string) bool { return tempRE.MatchString(name) }

// started is a second before this process started: a temporary file
// older than it was left by another process. (The second covers file
// systems whose clock for file times runs a little behind time.Now.)
var started = time.Now().Add(-time.Second)

// RemoveStale removes the temporary files of Write (IsTemp) in the folder
// dir (not its sub-folders) that are older than this process, so left by
// a process that was killed while it wrote: one a process still running
// writes now is younger and stays. It returns the names removed; a folder
// that is not there has none.
func RemoveStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(started) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// WriteFile writes data to path atomically, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, nil)
}

// Write writes path atomically through write, with permissions perm (the
// process's umask does not apply). write gets a buffered writer on a
// temporary file named ".<base>.*.tmp" beside path. beforeRename, if not
// nil, runs once the temporary file is complete and synced and before it
// replaces path; an error from it, like one from write, leaves path as it
// was and removes the temporary file.
func Write(path string, perm os.FileMode, write func(io.Writer) error, beforeRename func() error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	err = f.Chmod(perm)
	if err == nil {
		err = write(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && beforeRename != nil {
		err = beforeRename()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	committed = true
	return SyncDir(dir)
}

// Commit replaces path with the complete file tmp, which another program
// wrote in the same folder: it syncs tmp, renames it over path and syncs
// the folder. On error tmp is left for the caller to remove.
func Commit(tmp, path string) error {
	if filepath.Dir(tmp) != filepath.Dir(path) {
		return fmt.Errorf("atomicfile: %s and %s are in different folders", tmp, path)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs the folder dir, so that files created, renamed or removed
// in it stay so after a crash. Systems whose folders cannot be synced
// (Windows) report no error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && ignoreDirSyncError(err) {
		return nil
	}
	return err
}

// ignoreDirSyncError reports whether err is a system's way of saying that
// folders cannot be synced.
func ignoreDirSyncError(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && isDirSyncUnsupported(pe.Err)
}
