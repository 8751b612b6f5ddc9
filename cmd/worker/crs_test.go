package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/internal/jsonkeys"
)

// geoMetadata returns the GeoParquet "geo" metadata of a Parquet file.
func geoMetadata(t *testing.T, path string) (meta struct {
	Columns map[string]struct {
		CRS json.RawMessage `json:"crs"`
	} `json:"columns"`
}) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var geo string
	if err := db.QueryRow("SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = 'geo'", path).Scan(&geo); err != nil {
		t.Fatalf("%s: geo metadata: %v", path, err)
	}
	if err := json.Unmarshal([]byte(geo), &meta); err != nil {
		t.Fatalf("%s: geo metadata %s: %v", path, geo, err)
	}
	return meta
}

// crsID is the id a PROJJSON "crs" names, as "EPSG:32631"; "" for none.
func crsID(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if len(raw) == 0 {
		return ""
	}
	var c struct {
		ID struct {
			Authority string `json:"authority"`
			Code      any    `json:"code"`
		} `json:"id"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("crs %s: %v", raw, err)
	}
	b, _ := json.Marshal(c.ID.Code)
	return c.ID.Authority + ":" + strings.Trim(string(b), `"`)
}

// TestGeoParquetCRS is review 3's item 3: a GeoParquet of a projected
// grid names its CRS in the geo metadata (PROJJSON, GeoParquet 1.0
// "crs"), and the CRS survives a GeoParquet read (export, init, a
// rewrite by retry), also into a store without CRS metadata: SQLite gets
// an epsg column when the table has none.
func TestGeoParquetCRS(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(args ...string) {
		t.Helper()
		if code, out, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	must("split", "--area", "3,50,4,51", "--tile-size", "20000", "--projection", "utm", "--to", p("s.parquet"))
	if got := crsID(t, geoMetadata(t, p("s.parquet")).Columns["geometry"].CRS); got != "EPSG:32631" {
		t.Errorf("split's GeoParquet names crs %q, want EPSG:32631", got)
	}
	must("export", "--db", p("s.parquet"), "--to", p("again.parquet"))
	if got := crsID(t, geoMetadata(t, p("again.parquet")).Columns["geometry"].CRS); got != "EPSG:32631" {
		t.Errorf("exported GeoParquet names crs %q, want EPSG:32631", got)
	}
	must("retry", "--db", p("again.parquet"), "--status", "not_started")
	if got := crsID(t, geoMetadata(t, p("again.parquet")).Columns["geometry"].CRS); got != "EPSG:32631" {
		t.Errorf("after a rewrite, the GeoParquet names crs %q, want EPSG:32631", got)
	}
	// A CSV knows the CRS from its epsg column only, as split writes it.
	must("split", "--area", "3,50,4,51", "--tile-size", "20000", "--projection", "utm", "--to", p("s.csv"))
	must("init", "--from", p("s.csv"), "--db", p("fromcsv.parquet"))
	if got := crsID(t, geoMetadata(t, p("fromcsv.parquet")).Columns["geometry"].CRS); got != "EPSG:32631" {
		t.Errorf("GeoParquet from split's CSV names crs %q, want EPSG:32631", got)
	}
	// Longitude/latitude names no crs (OGC:CRS84 by GeoParquet's rule).
	must("split", "--area", "3,50,4,51", "--tile-size", "0.5", "--projection", "4326", "--to", p("ll.parquet"))
	if got := geoMetadata(t, p("ll.parquet")).Columns["geometry"].CRS; len(got) != 0 {
		t.Errorf("a longitude/latitude GeoParquet names crs %s", got)
	}

	// A GeoJSON with a crs member and no epsg property: the GeoParquet
	// names it, and SQLite, which has no place for it, gets an epsg column.
	writeFile(t, dir, "n.geojson", `{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:32631"}},
 "features":[{"type":"Feature","properties":{"z":1,"a":"x"},"geometry":{"type":"Point","coordinates":[500000,5600000]}}]}`)
	must("init", "--from", p("n.geojson"), "--db", p("n.parquet"))
	if got := crsID(t, geoMetadata(t, p("n.parquet")).Columns["geometry"].CRS); got != "EPSG:32631" {
		t.Errorf("GeoParquet from a GeoJSON with crs names crs %q, want EPSG:32631", got)
	}
	// The dashboard reads the CRS a GeoParquet names (review 3, item 5).
	if snap, err := readSnapshot(t.Context(), p("n.parquet")); err != nil || snap.EPSG != 32631 {
		t.Errorf("dashboard snapshot of n.parquet: EPSG %v, %v; want 32631", snap, err)
	}
	must("export", "--db", p("n.parquet"), "--to", p("n.db"))
	if code, out, errOut := runCLI(t, "init", "--from", p("n.geojson"), "--db", p("n.csv")); code != 0 || !strings.Contains(out, "columns z, a, geometry, epsg") {
		t.Errorf("init of a CSV from a GeoJSON with crs: exit %d, %q %s; want the epsg column named", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "query", "--db", p("n.db"), "--format", "csv", "select z, a, epsg from jobs")
	if code != 0 || !strings.Contains(out, "1,x,32631") {
		t.Errorf("SQLite from a GeoParquet in EPSG:32631: exit %d, %q %s; want an epsg column", code, out, errOut)
	}
}

// TestGeoJSONExportCRS is review 3's item 4: a table of projected
// geometries (known from its epsg column, as split writes it) exports to
// GeoJSON with the "crs" member split's own GeoJSON has, and GeoJSON keeps
// the column order both ways.
func TestGeoJSONExportCRS(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(args ...string) {
		t.Helper()
		if code, out, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	must("split", "--area", "3,50,4,51", "--tile-size", "20000", "--projection", "utm", "--to", p("s.geojson"))
	must("init", "--from", p("s.geojson"), "--db", p("fromgj.db"))
	must("export", "--db", p("fromgj.db"), "--to", p("back.geojson"))
	for _, name := range []string{"s.geojson", "back.geojson"} {
		b, _ := os.ReadFile(p(name))
		var fc struct {
			CRS struct {
				Properties struct{ Name string } `json:"properties"`
			} `json:"crs"`
			Features []struct {
				Properties json.RawMessage `json:"properties"`
			} `json:"features"`
		}
		if err := json.Unmarshal(b, &fc); err != nil || len(fc.Features) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		if fc.CRS.Properties.Name != "urn:ogc:def:crs:EPSG::32631" {
			t.Errorf("%s: crs %q, want urn:ogc:def:crs:EPSG::32631", name, fc.CRS.Properties.Name)
		}
		keys := strings.Join(jsonkeys.Object(fc.Features[0].Properties), ",")
		if !strings.HasPrefix(keys, "tile_id,epsg,west,south,east,north") {
			t.Errorf("%s: properties in the order %s, want split's tile_id,epsg,west,south,east,north first", name, keys)
		}
	}
	code, out, _ := runCLI(t, "query", "--db", p("fromgj.db"), "--format", "csv", "select * from jobs limit 0")
	if code != 0 || !strings.HasPrefix(out, "tile_id,epsg,west,south,east,north,geometry") {
		t.Errorf("init --from split's GeoJSON: columns %q, want split's order", out)
	}

	// Rows in two CRSs cannot be one GeoJSON file: refused, nothing written.
	writeFile(t, dir, "mixed.csv", "tile,epsg,geometry\na,32631,POINT (500000 5600000)\nb,32632,POINT (500000 5600000)\n")
	must("init", "--from", p("mixed.csv"), "--db", p("mixed.db"))
	code, _, errOut := runCLI(t, "export", "--db", p("mixed.db"), "--to", p("mixed.geojson"))
	if code == 0 || !strings.Contains(errOut, "row 1 is in EPSG:32631, row 2 in EPSG:32632") {
		t.Errorf("export of rows in two CRSs to GeoJSON: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(p("mixed.geojson")); err == nil {
		t.Error("mixed.geojson written")
	}
}
