package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/paulmach/orb/encoding/wkt"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/atomicfile"
)

// geometryColumn is where geometries live in a table, as WKT text: the
// name the Python client gives a GeoDataFrame's geometry.
const geometryColumn = "geometry"

// checkGeometries makes sure every cell of the geometry column is WKT,
// or empty, before a table is written to any store: SQLite and CSV keep
// text as it comes, so a bad cell would otherwise surface only in a job.
// orb reads 2D WKT quickly; a cell it refuses goes to DuckDB, which also
// reads Z and M coordinates.
func checkGeometries(ctx context.Context, from string, t *table) error {
	i := slices.Index(t.columns, geometryColumn)
	if i < 0 {
		return nil
	}
	var duck *sql.DB
	defer func() {
		if duck != nil {
			duck.Close()
		}
	}()
	for r, row := range t.rows {
		if row[i] == nil {
			continue
		}
		s, ok := row[i].(string)
		if ok && strings.TrimSpace(s) == "" {
			continue
		}
		if ok {
			if _, err := wkt.Unmarshal(s); err == nil {
				continue
			}
			if duck == nil {
				var err error
				if duck, err = sql.Open("duckdb", ""); err != nil {
					return err
				}
			}
			var g any
			if duck.QueryRowContext(ctx, "SELECT CAST(? AS GEOMETRY)", s).Scan(&g) == nil {
				continue
			}
		}
		return fmt.Errorf("%s: row %d, column %q: not WKT: %.60q", from, r+1, geometryColumn, fmt.Sprint(row[i]))
	}
	return nil
}

func isGeoJSON(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".geojson" || ext == ".json"
}

// readTable reads a job table from a file whose name says its format: CSV
// input, a GeoJSON FeatureCollection (one row per feature), or any job
// table store (jobs.db, ...), whose manager columns come along.
func readTable(ctx context.Context, path string) (*table, error) {
	switch {
	case isGeoJSON(path):
		return readGeoJSON(path)
	case strings.EqualFold(filepath.Ext(path), ".csv"):
		return readCSV(path)
	}
	if _, _, err := driver.Lookup(path); err != nil {
		return nil, fmt.Errorf("%s: unsupported input (want .csv, .geojson or a job table: %v)", path, err)
	}
	return tableFromStore(ctx, path)
}

// tableFromStore reads every row of a store, manager columns included.
func tableFromStore(ctx context.Context, location string) (*table, error) {
	s, err := openToRead(ctx, location)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	user, err := s.Columns(ctx)
	if err != nil {
		return nil, inTable(location, err)
	}
	jobs, err := s.Select(ctx, driver.Filter{})
	if err != nil {
		return nil, inTable(location, err)
	}
	t := &table{columns: slices.Clone(user)}
	for _, c := range driver.ManagerColumns() {
		t.columns = append(t.columns, c.Name)
	}
	for _, j := range jobs {
		r := make([]any, 0, len(t.columns))
		for _, c := range user {
			r = append(r, j.Data[c])
		}
		for _, c := range driver.ManagerColumns() {
			r = append(r, j.Value(c.Name))
		}
		t.rows = append(t.rows, r)
	}
	return t, nil
}

// inTable names the table in a store's error, unless the store did.
func inTable(location string, err error) error {
	_, path, _ := driver.Lookup(location)
	if path != "" && strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", location, err)
}

// readGeoJSON turns a FeatureCollection into rows: the properties (in the
// order they first appear) and the geometry as WKT.
func readGeoJSON(path string) (*table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Type     string            `json:"type"`
		Features []json.RawMessage `json:"features"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not GeoJSON: %w", path, err)
	}
	if doc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("%s: want a GeoJSON FeatureCollection, got type %q", path, doc.Type)
	}
	t := &table{}
	index := map[string]int{}
	var props []map[string]any
	var geoms []any
	for i, raw := range doc.Features {
		var g struct {
			Geometry json.RawMessage `json:"geometry"`
		}
		json.Unmarshal(raw, &g)
		if err := checkGeoJSONGeometry(g.Geometry); err != nil {
			return nil, fmt.Errorf("%s: feature %d: %w", path, i+1, err)
		}
		f, err := geojson.UnmarshalFeature(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: feature %d: %w", path, i+1, err)
		}
		var p map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var withNumbers struct {
			Properties map[string]any `json:"properties"`
		}
		if err := dec.Decode(&withNumbers); err == nil {
			p = withNumbers.Properties
		}
		for _, k := range propertyKeys(raw) {
			if k == geometryColumn {
				return nil, fmt.Errorf("%s: feature %d: a property is called %q, the name of the geometry column", path, i+1, k)
			}
			if _, ok := index[k]; !ok {
				index[k] = len(t.columns)
				t.columns = append(t.columns, k)
			}
		}
		props = append(props, p)
		if f.Geometry == nil {
			geoms = append(geoms, nil)
		} else {
			geoms = append(geoms, wkt.MarshalString(f.Geometry))
		}
	}
	t.columns = append(t.columns, geometryColumn)
	for i, p := range props {
		r := make([]any, len(t.columns))
		for k, v := range p {
			r[index[k]] = jsonValue(v)
		}
		r[len(r)-1] = geoms[i]
		t.rows = append(t.rows, r)
	}
	return t, nil
}

// propertyKeys returns the keys of a feature's properties in the order
// they stand in the document (maps forget it).
func propertyKeys(feature json.RawMessage) []string {
	var f struct {
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(feature, &f) != nil || len(f.Properties) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(f.Properties))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

// jsonValue turns a JSON property into a table value: whole numbers int64,
// other numbers float64, objects and arrays their JSON text.
func jsonValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}

// writeGeoJSON writes t as a FeatureCollection; the geometry column (WKT)
// becomes each feature's geometry, the other columns its properties.
func writeGeoJSON(path string, t *table) error {
	g := slices.Index(t.columns, geometryColumn)
	fc := geojson.NewFeatureCollection()
	for i, r := range t.rows {
		f := geojson.NewFeature(nil)
		if g >= 0 && r[g] != nil {
			s, _ := r[g].(string)
			geom, err := wkt.Unmarshal(s)
			if err != nil {
				return fmt.Errorf("row %d, column %q: not WKT: %w", i+1, geometryColumn, err)
			}
			f.Geometry = geom
		}
		for j, c := range t.columns {
			if j != g {
				f.Properties[c] = r[j]
			}
		}
		fc.Append(f)
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644) // a kill leaves no half a file
}

var exportCmd = command{
	name: "export",
	usage: `
Usage: worker export --db TABLE --to FILE
       worker export --db TABLE --to DIR --stac [--root-dir DIR]

Writes a job table, manager columns included, to another format picked from
the file name: a GeoJSON FeatureCollection (.geojson: the geometry column,
WKT, becomes each feature's geometry), a CSV table as the Python client
writes it (.csv, geometries as WKT), Parquet (.parquet: GeoParquet, the
geometry column as WKB with geo metadata), DuckDB (.duckdb) or SQLite
(.db). The target must not exist. A bad geometry is an error naming the
row and column, and nothing is written.
'worker init --from' reads the same formats back.

With --stac, writes a static STAC 1.1.0 Collection of the results instead:
DIR/collection.json and one Item per finished job (DIR/<job id>/<job id>.json)
with the job's footprint (the results' own geometry, else the row's
geometry column), its time (the results' datetime, else the interval from
start_time to the job's last update), the row's columns as properties, and
the files of ROOT/job_<id>/ as assets with their media types. Every link is
relative: put DIR inside the --root-dir folder to move them together. DIR
must not exist or be empty. Finished rows that get no Item, or whose
results are not all on disk, are listed, and the exit status is 1.

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
	t, err := tableFromStore(ctx, *db)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*to); err == nil {
		return fmt.Errorf("%s exists already: choose another --to", *to)
	}
	if isGeoJSON(*to) {
		if err := writeGeoJSON(*to, t); err != nil {
			return fmt.Errorf("%s: %w", *db, err)
		}
	} else if _, err := createTable(ctx, *to, t); err != nil {
		// Rows are numbered as in the table read.
		return fmt.Errorf("export %s to %s: %w", *db, *to, err)
	}
	fmt.Fprintf(stdout, "wrote %d rows from %s to %s\n", len(t.rows), *db, *to)
	return nil
}

var errSameFile = errors.New("--from and --db name the same file")
