package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeo-batch/worker/driver"
)

var initCmd = command{
	name: "init",
	usage: `
Usage: worker init --from FILE --db TABLE

Creates a job table from FILE, with the file's columns plus the manager's
(id, backend_name, status, start_time, ...). FILE is a CSV file (one row per
line), a GeoJSON FeatureCollection (one row per feature: its properties, and
its geometry as WKT in a "geometry" column), or another job table. The
format of TABLE comes from its name too: jobs.db (SQLite), jobs.csv (the
Python client's CSV table), jobs.parquet (Parquet; GeoParquet when it has a
geometry column) or jobs.duckdb. A job table written by the openEO Python client
keeps its statuses and job ids, so a run started there resumes here.
Nothing is written if the input has an error; the message names the file,
the line or row, and the column.

Example:
  worker init --from tiles.csv --db jobs.db
  worker init --from aois.geojson --db jobs.csv
  worker init --append --from more-tiles.csv --db jobs.db --key tile,year
` + appendUsage,
	run: runInit,
}

func runInit(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	from := fs.String("from", "", "`file` with one row per job: CSV, GeoJSON, (Geo)Parquet or another job table (required)")
	db := fs.String("db", "", "job table to create: a `path` such as jobs.db, or sqlite:///abs/path (required)")
	appendRows := fs.Bool("append", false, "add the rows of FILE to the existing TABLE (see --key)")
	key := fs.String("key", "", "with --append: the `columns` (comma list) that identify a row")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *db == "" {
		return usagef("init: --from and --db are required")
	}
	if *appendRows || *key != "" {
		return appendTable(ctx, *from, *db, *key, stdout)
	}
	if filepath.Clean(*from) == filepath.Clean(*db) {
		return usagef("init: %v", errSameFile)
	}
	t, err := readTable(ctx, *from)
	if err != nil {
		return err
	}
	if err := checkGeometries(ctx, *from, t); err != nil {
		return err
	}
	n, err := createTable(ctx, *db, t)
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	fmt.Fprintf(stdout, "created %s with %d rows and columns %s\n", *db, n, strings.Join(t.columns, ", "))
	return nil
}

// createTable writes t to a new store at location. On failure it removes
// what it created, so a bad input leaves nothing behind.
func createTable(ctx context.Context, location string, t *table) (int, error) {
	d, path, err := driver.Lookup(location)
	if err != nil {
		return 0, err
	}
	_, statErr := os.Stat(path)
	// A table on a server is made in one transaction: a failed Init
	// leaves nothing, and a table found there is someone else's.
	existed := statErr == nil || d.Exists != nil
	s, err := driver.Open(ctx, location)
	if err != nil {
		return 0, err
	}
	err = s.Init(ctx, t.columns, t.seq())
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if !existed {
			if rerr := driver.Remove(location); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if errors.Is(err, driver.ErrExists) {
			return 0, fmt.Errorf("%s already holds a job table: run it, or choose another --db", location)
		}
		return 0, err
	}
	return len(t.rows), nil
}
