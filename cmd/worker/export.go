package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/tableconv"
)

var exportCmd = command{
	name: "export",
	usage: `
Usage: worker export --db TABLE --to FILE
       worker export --db TABLE --to DIR --stac [--root-dir DIR] [--allow-incomplete]

Writes a job table, manager columns included, to another format picked from
the file name: a GeoJSON FeatureCollection (.geojson: the geometry column,
WKT, becomes each feature's geometry), a CSV table as the Python client
writes it (.csv, geometries as WKT), Parquet (.parquet: GeoParquet, the
geometry column as WKB with geo metadata), DuckDB (.duckdb) or SQLite
(.db). Geometries in a projected CRS (the one a GeoParquet names, or an
epsg column as worker split writes it) keep their coordinates and the CRS:
a GeoJSON "crs" member, a GeoParquet "crs"; rows in several CRSs do not go
to one GeoJSON file. A target that exists already, or whose ending is none
of these, is bad usage (exit 2). A bad geometry is an error naming the
row and column, and nothing is written.
'worker init --from' reads the same formats back.

With --stac, writes a static STAC 1.1.0 Collection of the results instead:
DIR/collection.json and one Item per finished job (DIR/<job id>/<job id>.json)
with the job's footprint (the results' own geometry, else the row's
geometry column, reprojected to longitude/latitude from the table's CRS or
the row's epsg column), its time (the results' datetime, else the interval from
start_time to the job's last update), the row's columns as properties, and
the files of ROOT/job_<id>/ as assets with their media types. ROOT is
--root-dir, the folder worker run wrote the job folders to (the current
folder by default, as for run); one that does not exist is bad usage (exit
2). Every link is relative: put DIR inside ROOT to move them together. DIR
must not exist or be empty. Finished rows that would get no Item (a
geometry that is not longitude/latitude WKT), or whose results are not all
on disk (no job folder, no job_<id>.json, or a file that job-results.json
lists missing or of another size than its file:size, as worker download
--dry-run reports them), are listed, one line each, and nothing is written
(exit status 1): fetch missing results with worker download, correct the
geometry in the table, or give --allow-incomplete to write the catalogue
anyway (exit status 0).

Example:
  worker export --db jobs.db --to jobs.geojson
  worker export --db jobs.db --to jobs.csv
  worker export --db jobs.csv --to jobs.parquet
  worker export --db jobs.db --to results/stac --stac --root-dir results
`,
	run: runExport,
}

func runExport(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	db := fs.String("db", "", "job table to export (required)")
	to := fs.String("to", "", "`file` to write; its ending picks the format (required)")
	stacOpts := addSTACFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" || *to == "" {
		return usagef("export: --db and --to are required")
	}
	if err := stacOpts.check(fs); err != nil {
		return err
	}
	if stacOpts.on {
		return exportSTAC(ctx, *db, *to, stacOpts, stdout, stderr)
	}
	if err := checkNewFile("export", "--to", *to); err != nil {
		return err
	}
	t, err := tableconv.ReadStore(ctx, *db)
	if err != nil {
		return err
	}
	// A geometry another tool wrote that the target would change (Parquet
	// drops trailing text) or cannot hold (GeoJSON has no NaN) is the
	// table's fault, named as init names it.
	if err := tableconv.CheckGeometries(ctx, *db, t); err != nil {
		return badInput(err)
	}
	if tableconv.IsGeoJSON(*to) {
		if err := tableconv.WriteGeoJSON(*to, t); err != nil {
			return tableError(*db, err)
		}
	} else if _, err := createTable(ctx, *to, t); err != nil {
		// Rows are numbered as in the table read.
		return fmt.Errorf("export %s to %s: %w", *db, *to, err)
	}
	fmt.Fprintf(stdout, "wrote %d rows from %s to %s\n", len(t.Rows), *db, *to)
	return nil
}

// checkNewFile refuses, as bad usage (exit 2) of command cmd naming the
// flag flagName, a file to write (location) that is there already, whose
// ending names no format a table is written in (GeoJSON or a store
// driver's), or whose folder is not there (checkFolder).
func checkNewFile(cmd, flagName, location string) error {
	if !tableconv.IsGeoJSON(location) {
		if _, _, err := driver.Lookup(location); err != nil {
			return usagef("%s: %s: %v", cmd, flagName, err)
		}
	}
	if _, err := os.Stat(location); err == nil {
		return usagef("%s: %s %s exists already: choose another", cmd, flagName, location)
	}
	return checkFolder(flagName, location)
}

// checkFolder refuses a file to write (location, given as the flag
// flagName) whose folder is not there, naming the folder: bad usage, exit
// 2. A table on a database server has no folder; a location no driver
// takes is left to the writer to refuse.
func checkFolder(flagName, location string) error {
	path := location
	if !tableconv.IsGeoJSON(location) {
		d, p, err := driver.Lookup(location)
		if err != nil || d.Exists != nil {
			return nil
		}
		path = p
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		return usagef("%s %s: %s is a file, not a folder", flagName, location, dir)
	case errors.Is(err, fs.ErrNotExist):
		return usagef("%s %s: the folder %s does not exist", flagName, location, dir)
	}
	return fmt.Errorf("%s %s: %w", flagName, location, err)
}

// createTable writes t to a new store at location (tableconv.Create),
// saying what to do when one is there already.
func createTable(ctx context.Context, location string, t *tableconv.Table) (int, error) {
	n, err := tableconv.Create(ctx, location, t)
	if errors.Is(err, driver.ErrExists) {
		return 0, badInput(fmt.Errorf("%s already holds a job table: run it, or choose another --db", location))
	}
	return n, err
}
