package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// OpenFunc opens the store at path, creating the file if it does not exist.
type OpenFunc func(ctx context.Context, path string) (Store, error)

// Driver is a registered storage back-end.
type Driver struct {
	// Name is also the URL scheme that selects it ("sqlite" for sqlite:///x).
	Name string
	// Extensions are the file name endings it serves, with the dot (".db").
	Extensions []string
	Open       OpenFunc
	// OpenReader, when set, opens the table only to read it, never taking
	// the role of its writer: a reader must not keep a run from starting.
	// Without it, readers use Open.
	OpenReader OpenFunc
	// Remove, when set, deletes the table at path with every file the
	// driver keeps beside it (journals, locks, work files), so that a
	// caller can take back a table it made, say after a failed Init,
	// without knowing those files. Without it, Remove deletes path only.
	// A file that does not exist is no error.
	Remove func(path string) error
	// Exists, when set, reports whether a table is at path, for drivers
	// whose tables are no files (a database server). Without it, a table
	// exists when its file does.
	Exists func(ctx context.Context, path string) (bool, error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Driver{}
)

// Register makes a driver available to Open. It panics if the name is
// taken or the driver is incomplete, like database/sql.Register.
func Register(d Driver) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if d.Name == "" || d.Open == nil {
		panic("driver: Register of an incomplete driver")
	}
	if _, dup := registry[d.Name]; dup {
		panic("driver: Register called twice for " + d.Name)
	}
	registry[d.Name] = d
}

// Drivers returns the names of the registered drivers, sorted.
func Drivers() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return namesLocked()
}

// Lookup picks the driver for location and returns it with the file path it
// names. A location is either NAME://PATH or NAME:PATH (sqlite:///tmp/jobs.db,
// sqlite:jobs.db) or a plain path whose extension selects the driver
// (jobs.db).
func Lookup(location string) (Driver, string, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if scheme, rest, ok := strings.Cut(location, ":"); ok && len(scheme) > 1 {
		if d, found := registry[scheme]; found {
			return d, strings.TrimPrefix(rest, "//"), nil
		}
		if strings.HasPrefix(rest, "//") {
			return Driver{}, "", fmt.Errorf("%s: unknown store scheme %q (registered: %v)", location, scheme, namesLocked())
		}
	}
	ext := strings.ToLower(filepath.Ext(location))
	for _, d := range registry {
		if slices.Contains(d.Extensions, ext) {
			return d, location, nil
		}
	}
	return Driver{}, "", fmt.Errorf("%s: no store driver for files ending in %q (known: %s)", location, ext, extensionsLocked())
}

// Open opens the store at location (see Lookup).
func Open(ctx context.Context, location string) (Store, error) {
	return open(ctx, location, false)
}

// OpenReader opens the store at location to read it (status, query,
// export): with the driver's OpenReader where it has one, else with Open.
func OpenReader(ctx context.Context, location string) (Store, error) {
	return open(ctx, location, true)
}

func open(ctx context.Context, location string, reader bool) (Store, error) {
	d, path, err := Lookup(location)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%s: empty path", location)
	}
	o := d.Open
	if reader && d.OpenReader != nil {
		o = d.OpenReader
	}
	s, err := o(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open %s store %s: %w", d.Name, path, err)
	}
	return s, nil
}

// Exists reports whether a table is at location: its file exists, or
// the driver's Exists says so.
func Exists(ctx context.Context, location string) (bool, error) {
	d, path, err := Lookup(location)
	if err != nil {
		return false, err
	}
	if d.Exists != nil {
		return d.Exists(ctx, path)
	}
	_, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Remove deletes the table at location and the files its driver keeps
// beside it (see Driver.Remove). The caller must have closed every store
// open on it.
func Remove(location string) error {
	d, path, err := Lookup(location)
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("%s: empty path", location)
	}
	if d.Remove != nil {
		err = d.Remove(path)
	} else if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("remove %s store %s: %w", d.Name, path, err)
	}
	return nil
}

func namesLocked() []string {
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func extensionsLocked() string {
	var exts []string
	for _, d := range registry {
		exts = append(exts, d.Extensions...)
	}
	sort.Strings(exts)
	if len(exts) == 0 {
		return "none: no driver is linked in"
	}
	return strings.Join(exts, ", ")
}
