// Package tableconv converts job tables between the formats a campaign
// meets: CSV input and the openEO Python client's CSV job table, GeoJSON
// FeatureCollections (one row per feature, the geometry as WKT text), and
// every job table store registered with package driver (SQLite, CSV,
// Parquet/GeoParquet, DuckDB, ...), whose manager columns come along.
//
// A conversion reads a whole table into a Table, checks it (CheckGeometries)
// and writes it to a new store (Create) or GeoJSON file (WriteGeoJSON).
// Nothing is written when the input has an error; the error names the
// file, the line, row or feature, and the column. No value is changed or
// dropped on the way: what a target cannot keep is refused instead.
//
// The store drivers to read or write must be registered by importing them,
// as for database/sql: _ "github.com/openeo-batch/worker/driver/sqlite".
package tableconv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/paulmach/orb/encoding/wkt"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/internal/jsonkeys"
	"github.com/openeo-batch/worker/internal/wktgeo"
)

// GeometryColumn is where geometries live in a table, as WKT text: the
// name the Python client gives a GeoDataFrame's geometry.
const GeometryColumn = "geometry"

// CheckGeometries makes sure every cell of t's GeometryColumn is a WKT
// geometry (OGC Simple Features, 2D, Z or M) that every store keeps as it
// is and a run sends unchanged, or empty, before a table is written to any
// store: SQLite and CSV would keep bad text as it comes (and a run refuse
// it later), Parquet and DuckDB would read what they can of it (dropping
// trailing text, a second geometry or an EWKT SRID). The rules are
// internal/wktgeo's, the same a run applies: no text after the geometry,
// no "SRID=n;" prefix, finite coordinates, no EMPTY geometry, closed
// rings of at least 4 positions. A bad cell is an error naming from (the
// file t was read from), the row (from 1), the column and the reason. A
// table without a geometry column passes. ctx is unused; it is kept for
// callers.
func CheckGeometries(ctx context.Context, from string, t *Table) error {
	i := slices.Index(t.Columns, GeometryColumn)
	if i < 0 {
		return nil
	}
	for r, row := range t.Rows {
		if err := checkGeometryCell(row[i]); err != nil {
			return fmt.Errorf("%s: row %d, %w", from, r+1, err)
		}
	}
	return nil
}

// checkGeometryCell checks one cell of GeometryColumn (see
// CheckGeometries); the error names the column.
func checkGeometryCell(v any) error {
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("column %q: not WKT: a %T (%v)", GeometryColumn, v, v)
	}
	if strings.TrimSpace(s) == "" {
		return nil
	}
	if err := wktgeo.Check(s); err != nil {
		return fmt.Errorf("column %q: not WKT: %w: %.60q", GeometryColumn, err, s)
	}
	return nil
}

// CheckManagerValues makes sure every cell of t's manager columns (status,
// costs, ...; see driver.ManagerColumns) is a value the stores take
// (driver.Normalize): a status the tools know, a number where one is due.
// A bad cell is an error naming from (the file t was read from), the row
// (from 1) and the column. The stores check the same when t is written;
// this tells the input's fault apart from the store's before anything is.
func CheckManagerValues(from string, t *Table) error {
	for i, c := range t.Columns {
		if _, ok := driver.ManagerColumn(c); !ok {
			continue
		}
		for r, row := range t.Rows {
			if _, err := driver.Normalize(c, row[i]); err != nil {
				return fmt.Errorf("%s: row %d, %w", from, r+1, err) // err names the column
			}
		}
	}
	return nil
}

// IsGeoJSON reports whether path names a GeoJSON file, by its ending
// (.geojson or .json, in any case).
func IsGeoJSON(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".geojson" || ext == ".json"
}

// Read reads a job table from a file whose name says its format: CSV
// input (.csv, see ReadCSV), a GeoJSON FeatureCollection (.geojson or
// .json, see ReadGeoJSON), or any job table store (jobs.db, sqlite:///x,
// ..., see ReadStore), whose manager columns come along. Another ending is
// an error saying which ones are known.
func Read(ctx context.Context, path string) (*Table, error) {
	switch {
	case IsGeoJSON(path):
		return ReadGeoJSON(path)
	case strings.EqualFold(filepath.Ext(path), ".csv"):
		return ReadCSV(path)
	}
	if _, _, err := driver.Lookup(path); err != nil {
		return nil, fmt.Errorf("%s: unsupported input (want .csv, .geojson or a job table: %v)", path, err)
	}
	return ReadStore(ctx, path)
}

// NoTableError is the error for a table location whose file does not
// exist. It matches fs.ErrNotExist with errors.Is.
type NoTableError struct {
	Location string // as given
}

func (e *NoTableError) Error() string { return e.Location + ": no such job table" }

// Unwrap makes errors.Is(err, fs.ErrNotExist) hold.
func (e *NoTableError) Unwrap() error { return fs.ErrNotExist }

// CheckExists returns a *NoTableError when the table at location (see
// driver.Lookup) does not exist (its file, or for a database server its
// table, see driver.Exists), so that a typo is reported
// instead of opening, and so creating, an empty table; an unknown kind of
// location is an error too.
func CheckExists(location string) error {
	ok, err := driver.Exists(context.Background(), location)
	if err != nil {
		return err // it names the file, or the server's table (never its password)
	}
	if !ok {
		return &NoTableError{Location: location}
	}
	return nil
}

// OpenReader opens the existing table at location only to read it (see
// driver.OpenReader): a reader never takes the writer's role, so it
// cannot keep a run from starting. A missing file is a *NoTableError.
func OpenReader(ctx context.Context, location string) (driver.Store, error) {
	if err := CheckExists(location); err != nil {
		return nil, err
	}
	return driver.OpenReader(ctx, location)
}

// ReadStore reads every row of the existing job table at location
// (opened with OpenReader), in table order: the user's columns, then the
// manager's (driver.ManagerColumns), with their values as the store holds
// them, and the CRS of its geometries when the table names one (Table.EPSG,
// from a GeoParquet "crs"). Errors name the table.
func ReadStore(ctx context.Context, location string) (*Table, error) {
	s, err := OpenReader(ctx, location)
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
	n, err := StoreEPSG(s)
	if err != nil {
		return nil, inTable(location, err)
	}
	t := FromJobs(user, nil, jobs)
	t.EPSG = n
	return t, nil
}

// FromJobs makes a table of rows read from a store: the columns user
// (the store's user columns), then extra (more user columns, such as ones
// to add, taken from each row's Data like user's; nil where a row has
// none), then the manager's columns (driver.ManagerColumns).
func FromJobs(user, extra []string, rows []driver.Job) *Table {
	t := &Table{Columns: append(slices.Clone(user), extra...)}
	for _, c := range driver.ManagerColumns() {
		t.Columns = append(t.Columns, c.Name)
	}
	for _, j := range rows {
		r := make([]any, 0, len(t.Columns))
		for _, c := range user {
			r = append(r, j.Data[c])
		}
		for _, c := range extra {
			r = append(r, j.Data[c])
		}
		for _, c := range driver.ManagerColumns() {
			r = append(r, j.Value(c.Name))
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// inTable names the table in a store's error, unless the store did.
func inTable(location string, err error) error {
	_, path, _ := driver.Lookup(location)
	if path != "" && strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", location, err)
}

// ReadGeoJSON reads a GeoJSON FeatureCollection (RFC 7946) into a table
// with one row per feature: a column per property, in the order the
// properties first appear, and last GeometryColumn, the feature's geometry
// as WKT (nil for a null geometry). A "crs" member (GeoJSON 2008, as
// worker split, GDAL and GeoPandas write it) naming a CRS other than
// longitude/latitude becomes Table.EPSG. Whole numbers become int64
// (beyond int64, their text as written), other numbers float64, objects
// and arrays their JSON text. A document that is not a FeatureCollection,
// text that is not UTF-8 (RFC 8259), a number beyond float64's range, a
// geometry that WKT would change (see CheckGeoJSONGeometry) or a property
// called "geometry" is an error naming the file and the feature (from 1),
// and the property where it is one's.
func ReadGeoJSON(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Type     string            `json:"type"`
		Features []json.RawMessage `json:"features"`
		CRS      *struct {
			Properties struct {
				Name string `json:"name"`
			} `json:"properties"`
		} `json:"crs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: not GeoJSON: %w", path, err)
	}
	if doc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("%s: want a GeoJSON FeatureCollection, got type %q", path, doc.Type)
	}
	if err := checkUTF8(path, b, doc.Features); err != nil {
		return nil, err
	}
	t := &Table{}
	if doc.CRS != nil {
		n, err := crs.ParseEPSG(doc.CRS.Properties.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: crs: %w", path, err)
		}
		if n != crs.WGS84 {
			t.EPSG = n
		}
	}
	index := map[string]int{}
	var props []map[string]any
	var geoms []any
	for i, raw := range doc.Features {
		var g struct {
			Geometry json.RawMessage `json:"geometry"`
		}
		json.Unmarshal(raw, &g)
		if err := CheckGeoJSONGeometry(g.Geometry); err != nil {
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
			if k == GeometryColumn {
				return nil, fmt.Errorf("%s: feature %d: a property is called %q, the name of the geometry column", path, i+1, k)
			}
			if _, ok := index[k]; !ok {
				index[k] = len(t.Columns)
				t.Columns = append(t.Columns, k)
			}
			if v, ok := p[k]; ok {
				if p[k], err = jsonValue(v); err != nil {
					return nil, fmt.Errorf("%s: feature %d, property %q: %w", path, i+1, k, err)
				}
			}
		}
		f, err := geojson.UnmarshalFeature(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: feature %d: %w", path, i+1, err)
		}
		props = append(props, p)
		if f.Geometry == nil {
			geoms = append(geoms, nil)
		} else {
			geoms = append(geoms, wkt.MarshalString(f.Geometry))
		}
	}
	t.Columns = append(t.Columns, GeometryColumn)
	for i, p := range props {
		r := make([]any, len(t.Columns))
		for k, v := range p {
			r[index[k]] = v
		}
		r[len(r)-1] = geoms[i]
		t.Rows = append(t.Rows, r)
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
	return jsonkeys.Object(f.Properties)
}

// WriteGeoJSON writes t to path as a FeatureCollection, replacing the file
// in one atomic step (a crash leaves the old file or the new one, never
// half of one): GeometryColumn (WKT) becomes each feature's geometry, the
// other columns its properties, in column order. When the geometries are
// in a CRS other than longitude/latitude (t.GeometryEPSG: the source's,
// or an epsg column's as worker split writes it), the FeatureCollection
// names it in a "crs" member, as WriteGeoJSONCRS does; rows in several
// CRSs cannot be one FeatureCollection and are an error naming two of
// them. A cell of GeometryColumn that is not WKT is an error naming the
// row (from 1) and the column, and nothing is written.
func WriteGeoJSON(path string, t *Table) error {
	n, mixed := t.GeometryEPSG()
	if mixed != "" {
		return fmt.Errorf("the geometries are in several CRSs (%s), which one GeoJSON file cannot name: export to another format, or one file per CRS", mixed)
	}
	return WriteGeoJSONCRS(path, t, n)
}

// WriteGeoJSONCRS is WriteGeoJSON for geometries in the projection EPSG
// code epsg. Unless it is 0 or 4326 (longitude/latitude, what RFC 7946
// GeoJSON holds), the FeatureCollection names it in the "crs" member of
// the 2008 GeoJSON specification, "urn:ogc:def:crs:EPSG::<epsg>", as GDAL
// and GeoPandas write it, so that readers do not take the coordinates for
// longitude/latitude.
func WriteGeoJSONCRS(path string, t *Table, epsg int) error {
	g := slices.Index(t.Columns, GeometryColumn)
	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection",`)
	if epsg != 0 && epsg != crs.WGS84 {
		fmt.Fprintf(&buf, `"crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::%d"}},`, epsg)
	}
	buf.WriteString(`"features":[`)
	for i, r := range t.Rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		geom := []byte("null")
		if g >= 0 && r[g] != nil {
			if err := checkGeometryCell(r[g]); err != nil {
				return fmt.Errorf("row %d, %w", i+1, err)
			}
			s, _ := r[g].(string)
			w, err := wkt.Unmarshal(s)
			if err != nil {
				return fmt.Errorf("row %d, column %q: not WKT: %w", i+1, GeometryColumn, err)
			}
			if geom, err = json.Marshal(geojson.NewGeometry(w)); err != nil {
				return fmt.Errorf("row %d, column %q: %w", i+1, GeometryColumn, err)
			}
		}
		buf.WriteString(`{"type":"Feature","geometry":`)
		buf.Write(geom)
		buf.WriteString(`,"properties":{`)
		first := true
		for j, c := range t.Columns {
			if j == g {
				continue
			}
			k, _ := json.Marshal(c)
			v, err := json.Marshal(r[j])
			if err != nil {
				return fmt.Errorf("row %d, column %q: %w", i+1, c, err)
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(k)
			buf.WriteByte(':')
			buf.Write(v)
		}
		buf.WriteString(`}}`)
	}
	buf.WriteString("]}")
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644) // a kill leaves no half a file
}

// Create writes t to a new job table at location (see driver.Lookup) and
// returns the number of rows written. The store checks the values (a
// manager column's status, time, ...) and refuses what it cannot keep
// (text that is not UTF-8 in Parquet or DuckDB), naming the row and
// column. On failure Create removes what it created, so a bad input
// leaves nothing behind; a location that already holds a table is an
// error matching driver.ErrExists, and that table is left as it was.
// The CRS of t's geometries (Table.GeometryEPSG), unless
// longitude/latitude, goes with them: into the table's own metadata
// where the store keeps one (GeoParquet's "crs"), else, when t.EPSG named
// it and t has no epsg column, into a new epsg column after the geometry,
// which t then has too.
func Create(ctx context.Context, location string, t *Table) (int, error) {
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
	if err = withCRS(s, t); err == nil {
		err = s.Init(ctx, t.Columns, t.All())
	}
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
			return 0, fmt.Errorf("%s already holds a job table: %w", location, driver.ErrExists)
		}
		return 0, err
	}
	return len(t.Rows), nil
}
