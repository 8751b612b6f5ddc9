package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/openeo-batch/worker/internal/atomicfile"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("content %q, %v; want new", got, err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", fi.Mode().Perm())
		}
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("folder holds %v, want only t.csv", names)
	}
}

func TestWriteFailureKeepsOldFile(t *testing.T) {
	boom := errors.New("boom")
	for name, tc := range map[string]struct {
		write  func(io.Writer) error
		before func() error
	}{
		"write fails": {
			write: func(w io.Writer) error {
				w.Write([]byte("half"))
				return boom
			},
		},
		"beforeRename fails": {
			write:  func(w io.Writer) error { _, err := w.Write([]byte("whole")); return err },
			before: func() error { return boom },
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "t.csv")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := atomicfile.Write(path, 0o644, tc.write, tc.before)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != "old" {
				t.Errorf("content %q, want old", got)
			}
			if names := entries(t, dir); len(names) != 1 {
				t.Errorf("folder holds %v, want only t.csv (no temporary file)", names)
			}
		})
	}
}

func TestBeforeRenameSeesCompleteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	var seen string
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write([]byte("complete"))
		return err
	}, func() error {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("path exists before the rename: %v", err)
		}
		for _, n := range entries(t, dir) {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			seen = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != "complete" {
		t.Errorf("temporary file held %q before the rename, want complete", seen)
	}
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Commit(tmp, path); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Errorf("content %q, want new", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file still there: %v", err)
	}
	if err := atomicfile.Commit(filepath.Join(t.TempDir(), "x"), path); err == nil {
		t.Error("Commit across folders succeeded")
	}
	if err := atomicfile.Commit(filepath.Join(dir, "missing"), path); err == nil {
		t.Error("Commit of a missing file succeeded")
	}
}

// A temporary file a killed process left (older than this one) is
// removed; one written now, and other files, stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".job_j-1.json.535000463.tmp", ".job-results.json.12.tmp", "fresh", ".x.1.tmp.keep", "b03.tif"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Unix(1e9, 0)
	os.Chtimes(filepath.Join(dir, ".job_j-1.json.535000463.tmp"), old, old)
	os.Chtimes(filepath.Join(dir, ".x.1.tmp.keep"), old, old)
	os.Rename(filepath.Join(dir, "fresh"), filepath.Join(dir, ".b.json.77.tmp")) // as a live writer's
	removed, err := atomicfile.RemoveStale(dir)
	if err != nil || len(removed) != 1 || removed[0] != ".job_j-1.json.535000463.tmp" {
		t.Errorf("removed %v, %v", removed, err)
	}
	want := []string{".b.json.77.tmp", ".job-results.json.12.tmp", ".x.1.tmp.keep", "b03.tif"}
	if got := entries(t, dir); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	if removed, err := atomicfile.RemoveStale(filepath.Join(dir, "none")); err != nil || removed != nil {
		t.Errorf("a missing folder: %v, %v", removed, err)
	}
	for name, want := range map[string]bool{".a.json.123.tmp": true, ".a.json.tmp": false, "a.json.1.tmp": false, ".a.1.tmp.x": false} {
		if atomicfile.IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v", name, !want)
		}
	}
}
