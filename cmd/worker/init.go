package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/tableconv"
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
geometry column) or jobs.duckdb; or a PostgreSQL table that workers on
several machines share, postgres://HOST/DB?table=NAME (loaded with COPY in
one transaction; the password in PGPASSWORD or ~/.pgpass). A job table written by the openEO Python client
keeps its statuses and job ids, so a run started there resumes here.
Nothing is written if the input has an error; the message names the file,
the line or row, and the column.

Example:
  worker init --from tiles.csv --db jobs.db
  worker init --from aois.geojson --db jobs.csv
  worker init --from tiles.csv --db 'postgres://me@db.example.org/campaigns?table=s2_2024'
  worker init --append --from more-tiles.csv --db jobs.db --key tile,year
` + appendUsage,
	run: runInit,
}

func runInit(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	from := fs.String("from", "", "`file` with one row per job: CSV, GeoJSON, (Geo)Parquet or another job table (required)")
	db := fs.String("db", "", "job table to create: a `path` such as jobs.db, sqlite:///abs/path, or postgres://HOST/DB?table=NAME (required)")
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
	if err := checkFolder("--db", *db); err != nil {
		return err
	}
	t, err := readInput(ctx, *from)
	if err != nil {
		return err
	}
	n, err := createTable(ctx, *db, t)
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	fmt.Fprintf(stdout, "created %s with %d rows and columns %s\n", *db, n, strings.Join(t.Columns, ", "))
	return nil
}

var errSameFile = errors.New("--from and --db name the same file")

// readInput reads and checks the table a user gives to import (init
// --from, init --append --from): tableconv.Read, CheckGeometries and
// CheckManagerValues. What is wrong with its content, an input that is not
// there and a kind of file that cannot be read are invalid input (exit 2);
// an error reading a file that is there (a store's lock, the disk) is not.
func readInput(ctx context.Context, from string) (*tableconv.Table, error) {
	t, err := tableconv.Read(ctx, from)
	if err != nil {
		var pe *fs.PathError
		_, _, lookupErr := driver.Lookup(from)
		content := tableconv.IsGeoJSON(from) || strings.EqualFold(filepath.Ext(from), ".csv")
		if errors.Is(err, fs.ErrNotExist) || content && !errors.As(err, &pe) || !content && lookupErr != nil {
			return nil, badInput(err)
		}
		return nil, err
	}
	if err := driver.CheckColumnNames(t.Columns); err != nil {
		return nil, badInput(fmt.Errorf("%s: %w", from, err))
	}
	if err := tableconv.CheckGeometries(ctx, from, t); err != nil {
		return nil, badInput(err)
	}
	if err := tableconv.CheckManagerValues(from, t); err != nil {
		return nil, badInput(err)
	}
	return t, nil
}
