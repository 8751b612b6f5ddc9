package query

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// pinned is one version of a table file, kept for as long as a DB reads
// it: DuckDB opens a file more than once per statement (its Parquet
// footer, then its row groups), and a run replaces a Parquet table by
// renaming a new file over it, so a DuckDB that opened the path each time
// could read the footer of one version and the data of another
// ("TProtocolException: Invalid data"). The file is opened once, and
// copied from that open file into a private folder, which DuckDB reads
// instead: every statement of the DB sees that version, whole.
//
// (A name that leads to the open file itself, /proc/self/fd/N, would
// spare the copy, but DuckDB refuses it, as a file outside its allowed
// paths, once the table's name leads to another file.)
type pinned struct {
	name string // what DuckDB opens: the copy
	dir  string // the private folder to remove
}

// beforePin, when set (by tests), runs after pin opened the table file
// and before it copies it: a test replaces the file there.
var beforePin func(path string)

// pin opens the file at path and copies that version of it.
func pin(path string) (*pinned, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if beforePin != nil {
		beforePin(path)
	}
	dir, err := os.MkdirTemp("", "worker-query-")
	if err != nil {
		return nil, err
	}
	p := &pinned{name: filepath.Join(dir, filepath.Base(path)), dir: dir}
	if err := copyFile(p.name, f); err != nil {
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

// release removes the copy. DuckDB must be done with it.
func (p *pinned) release() error {
	if p == nil || p.dir == "" {
		return nil
	}
	err := os.RemoveAll(p.dir)
	p.dir = ""
	return err
}
