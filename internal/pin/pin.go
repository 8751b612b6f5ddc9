// Package pin reads one version of a table file that a run may replace at
// any moment.
//
// DuckDB opens a file more than once per statement (its Parquet footer,
// then its row groups), and a run replaces a Parquet table by renaming a
// new file over it, so a DuckDB that opened the path each time could read
// the footer of one version and the data of another ("TProtocolException:
// Invalid data"). Pin opens the file once and copies that open file into a
// private folder, which DuckDB reads instead: every statement sees that
// version, whole.
//
// (A name that leads to the open file itself, /proc/self/fd/N, would spare
// the copy, but DuckDB refuses it, as a file outside its allowed paths,
// once the table's name leads to another file.)
package pin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is one version of a table file, kept for as long as a reader needs
// it.
type File struct {
	Name string // what DuckDB opens: the private copy
	dir  string // the private folder to remove
}

// BeforeCopy, when set (by tests), runs after Pin opened the table file
// and before it copies it: a test replaces the file there.
var BeforeCopy func(path string)

// Pin opens the file at path and copies that version of it into a private
// folder under os.TempDir. The error names path, never the copy.
func Pin(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if BeforeCopy != nil {
		BeforeCopy(path)
	}
	dir, err := os.MkdirTemp("", "worker-query-")
	if err != nil {
		return nil, err
	}
	p := &File{Name: filepath.Join(dir, filepath.Base(path)), dir: dir}
	if err := copyFile(p.Name, f); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("copy %s to read it: %w", path, err)
	}
	return p, nil
}

func copyFile(name string, src io.Reader) error {
	dst, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// Release removes the copy; the reader must be done with it. A nil File
// or a second Release does nothing.
func (p *File) Release() error {
	if p == nil || p.dir == "" {
		return nil
	}
	err := os.RemoveAll(p.dir)
	p.dir = ""
	return err
}
