package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/tableconv"
)

// errBusy is the cause of a refusal to change a table that a run holds.
var errBusy = errors.New("the table is in use")

// runningWorkers returns the ids of the workers (worker run processes)
// that hold the table at location: run takes a lock on a file named after
// its id in <table>.workers/ for as long as it runs (worker.LockOwner).
func runningWorkers(location string) ([]string, error) {
	d, path, err := driver.Lookup(location)
	if err != nil {
		return nil, err
	}
	if d.Exists != nil {
		// A table on a server: its store keeps the workers.
		ctx := context.Background()
		store, err := driver.OpenReader(ctx, location)
		if err != nil {
			return nil, err
		}
		defer store.Close()
		if l, ok := store.(driver.Liveness); ok {
			return l.Workers(ctx)
		}
		return nil, nil
	}
	entries, err := os.ReadDir(path + ".workers")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var live []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok || e.IsDir() {
			continue
		}
		// O_RDWR without O_CREATE: a file removed meanwhile is no worker.
		l := flock.New(filepath.Join(path+".workers", e.Name()), flock.SetFlag(os.O_RDWR))
		got, err := l.TryLock()
		if err != nil {
			continue
		}
		if got {
			l.Unlock() // its owner is gone
			continue
		}
		live = append(live, id)
	}
	return live, nil
}

// refuseIfRunning returns an error saying why when a run holds the table.
func refuseIfRunning(location, what string) error {
	live, err := runningWorkers(location)
	if err != nil {
		return fmt.Errorf("%s: %w", location, err)
	}
	if len(live) > 0 {
		d, path, _ := driver.Lookup(location)
		where := "lock files in " + path + ".workers/"
		if d.Exists != nil {
			where = "fresh heartbeats in the table's workers table"
		}
		return fmt.Errorf("%s: %w: %d worker run process(es) hold it (%s: %s); "+
			"%s changes rows a run works on, so stop the run (Ctrl-C; it resumes with the same command) and try again",
			location, errBusy, len(live), where, strings.Join(live, ", "), what)
	}
	return nil
}

// rewriteTable replaces the table at location with the one build makes
// from its columns and rows, in one atomic step: the new table is written
// beside the old one, in the same format, and renamed over it. Nothing
// changes if build or the writing fails. It refuses while a run holds the
// table (see refuseIfRunning) or another program writes it (a CSV,
// Parquet or DuckDB table's writer lock), and holds that lock while it
// works. what names the command in messages.
//
// Adding columns goes through here because driver.Store has no way to
// add a user column to an existing table.
func rewriteTable(ctx context.Context, location, what string, build func(user []string, rows []driver.Job) (*tableconv.Table, error)) error {
	if err := mustExist(location); err != nil {
		return err
	}
	if err := refuseIfRunning(location, what); err != nil {
		return err
	}
	d, path, err := driver.Lookup(location)
	if err != nil {
		return err
	}
	store, err := driver.Open(ctx, location)
	if err != nil {
		return err
	}
	open := true
	defer func() {
		if open {
			store.Close()
		}
	}()
	if wc, ok := store.(driver.WriteChecker); ok {
		if err := wc.Writable(); err != nil {
			return fmt.Errorf("%w: %w; %s changes rows, so stop the program that writes the table and try again", errBusy, err, what)
		}
	}
	user, err := store.Columns(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", location, err)
	}
	rows, err := store.Select(ctx, driver.Filter{})
	if err != nil {
		return fmt.Errorf("%s: %w", location, err)
	}
	t, err := build(user, rows)
	if err != nil {
		return err
	}
	if t.EPSG, err = tableconv.StoreEPSG(store); err != nil { // a GeoParquet "crs" stays
		return fmt.Errorf("%s: %w", location, err)
	}
	if r, ok := store.(driver.Replacer); ok {
		// A table on a server: replaced in one transaction.
		if err := r.Replace(ctx, t.Columns, t.All()); err != nil {
			return fmt.Errorf("%s: %w (the table is unchanged)", location, err)
		}
		return nil
	}
	var b [6]byte
	rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new-"+hex.EncodeToString(b[:])+filepath.Ext(path))
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".journal", ".lock", ".work.duckdb", ".work.duckdb.wal"} {
			os.Remove(tmp + suffix)
		}
	}()
	if _, err := createTable(ctx, d.Name+"://"+tmp, t); err != nil {
		return fmt.Errorf("%s: %w (the table is unchanged)", location, err)
	}
	if d.Name == "sqlite" {
		// SQLite keeps no writer lock, and its connections must be closed
		// before the file is replaced; look for a run once more.
		open = false
		if err := store.Close(); err != nil {
			return err
		}
		if err := refuseIfRunning(location, what); err != nil {
			return err
		}
	}
	if err := atomicfile.Commit(tmp, path); err != nil {
		return fmt.Errorf("%s: %w (the table is unchanged)", location, err)
	}
	return nil
}
