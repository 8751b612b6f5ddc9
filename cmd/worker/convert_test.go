package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
)

// cli runs the command line in-process and returns exit code and output.
func cli(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	wd, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(wd)
	var out bytes.Buffer
	code := run(t.Context(), args, &out, &out)
	return code, out.String()
}

const aois = `{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"name": "a", "year": 2020, "cover": 0.5, "meta": {"k": [1, 2]}},
  "geometry": {"type": "Polygon", "coordinates": [[[5, 51], [5.1, 51], [5.1, 51.1], [5, 51]]]}},
 {"type": "Feature", "properties": {"name": "b, \"quoted\"", "year": 2021},
  "geometry": {"type": "Point", "coordinates": [5.5, 51.5]}},
 {"type": "Feature", "properties": {"name": "c"}, "geometry": null}
]}`

// GeoJSON -> SQLite -> CSV -> GeoJSON keeps properties and geometries.
func TestConvertRoundTrip(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "aois.geojson"), []byte(aois), 0o644)
	for _, args := range [][]string{
		{"init", "--from", "aois.geojson", "--db", "jobs.db"},
		{"export", "--db", "jobs.db", "--to", "jobs.csv"},
		{"init", "--from", "jobs.csv", "--db", "again.db"},
		{"export", "--db", "again.db", "--to", "out.geojson"},
	} {
		if code, out := cli(t, dir, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "out.geojson"))
	var fc struct {
		Features []struct {
			Geometry   json.RawMessage
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(b, &fc); err != nil || len(fc.Features) != 3 {
		t.Fatalf("out.geojson: %v, %s", err, b)
	}
	f0, f1, f2 := fc.Features[0], fc.Features[1], fc.Features[2]
	if !strings.Contains(string(f0.Geometry), `"Polygon"`) || !strings.Contains(string(f0.Geometry), "5.1") {
		t.Errorf("feature 1 geometry %s", f0.Geometry)
	}
	if f0.Properties["year"] != 2020.0 || f0.Properties["cover"] != 0.5 || f0.Properties["meta"] != `{"k":[1,2]}` {
		t.Errorf("feature 1 properties %v", f0.Properties)
	}
	if f1.Properties["name"] != `b, "quoted"` || !strings.Contains(string(f1.Geometry), `"Point"`) {
		t.Errorf("feature 2: %s %v", f1.Geometry, f1.Properties)
	}
	if string(f2.Geometry) != "null" || f2.Properties["status"] != "not_started" {
		t.Errorf("feature 3: %s %v", f2.Geometry, f2.Properties)
	}
	// The CSV in the middle is a Python-style table with WKT.
	csv, _ := os.ReadFile(filepath.Join(dir, "jobs.csv"))
	if !strings.Contains(string(csv), "POLYGON") || !strings.HasPrefix(string(csv), "name,year,cover,meta,geometry,id,backend_name,status") {
		t.Errorf("jobs.csv:\n%s", csv)
	}
}

// Statuses and job ids survive a conversion between stores.
func TestConvertKeepsManagerColumns(t *testing.T) {
	dir := t.TempDir()
	fixture, err := os.ReadFile("../../../shared/fixtures/python-client/geometry.csv")
	if err != nil {
		t.Skip("fixture not present")
	}
	os.WriteFile(filepath.Join(dir, "py.csv"), fixture, 0o644)
	if code, out := cli(t, dir, "init", "--from", "py.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	if code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", "out.geojson"); code != 0 {
		t.Fatal(out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "out.geojson"))
	for _, want := range []string{`"status":"finished"`, `"id":"j-1"`, `"backend_name":"cdse"`, `"costs":4.5`, `"Polygon"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("out.geojson lacks %s", want)
		}
	}
}

func TestConvertBadInput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("name,geometry\na,POINT (1 2)\nb,\"POLYGON ((1 2, 3\"\nc,\"POINT Z (1 2 3)\"\n"), 0o644)
	// A bad WKT cell is refused whatever the table's format, as invalid
	// input (exit 2), and nothing is written.
	for _, db := range []string{"t.db", "t.csv", "t.parquet", "t.duckdb"} {
		code, out := cli(t, dir, "init", "--from", "bad.csv", "--db", db)
		if code != exitUsage || !strings.Contains(out, "bad.csv") || !strings.Contains(out, "row 2") || !strings.Contains(out, `"geometry"`) {
			t.Errorf("init --db %s: exit %d: %s", db, code, out)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "t.*")); len(left) > 0 {
			t.Errorf("init --db %s left %v", db, left)
		}
	}
	// Z coordinates are WKT too.
	os.WriteFile(filepath.Join(dir, "z.csv"), []byte("name,geometry\nc,\"POINT Z (1 2 3)\"\nd,\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "z.csv", "--db", "z.db"); code != 0 {
		t.Errorf("init of a 3D point: exit %d: %s", code, out)
	}
	// A table written by another program can still hold bad WKT: export
	// names the row, as invalid input (exit 2).
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(t.Context(), []string{"name", "geometry"}, drivertest.Rows([][]any{{"a", "POINT (1 2)"}, {"b", "POLYGON ((1 2, 3"}})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", "out.geojson")
	if code != exitUsage || !strings.Contains(out, "row 2") || !strings.Contains(out, `"geometry"`) || !strings.Contains(out, "jobs.db") {
		t.Errorf("bad WKT: exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.geojson")); !os.IsNotExist(err) {
		t.Error("out.geojson written despite the error")
	}
	for name, doc := range map[string]string{
		"notfc.geojson":   `{"type": "Feature", "geometry": null, "properties": {}}`,
		"badgeom.geojson": `{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": 7}}]}`,
		"broken.geojson":  `{"type": "FeatureCollection", "features": [`,
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644)
		code, out := cli(t, dir, "init", "--from", name, "--db", name+".db")
		if code != exitUsage || !strings.Contains(out, name) {
			t.Errorf("%s: exit %d: %s", name, code, out)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".db")); !os.IsNotExist(err) {
			t.Errorf("%s: a table was left behind", name)
		}
	}
	if code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", "bad.csv"); code != exitUsage || !strings.Contains(out, "--to bad.csv exists already") {
		t.Errorf("export over an existing file: exit %d, %s; want 2 naming it", code, out)
	}
}

// query gives the same answer over every format of one table.
func TestQueryEveryFormat(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "aois.geojson"), []byte(aois), 0o644)
	if code, out := cli(t, dir, "init", "--from", "aois.geojson", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	for _, to := range []string{"jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		if code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", to); code != 0 {
			t.Fatalf("export %s: %s", to, out)
		}
	}
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		code, out := cli(t, dir, "query", "--db", db, "--format", "csv",
			"select name, year, status from jobs where year is not null order by name")
		want := "name,year,status\na,2020,not_started\n\"b, \"\"quoted\"\"\",2021,not_started\n"
		if code != 0 || out != want {
			t.Errorf("%s: exit %d\n%s\nwant\n%s", db, code, out, want)
		}
	}
	// Geometry of a Parquet table: GEOMETRY, with core ST_ functions.
	code, out := cli(t, dir, "query", "--db", "jobs.parquet", "--format", "json", "select ST_AsText(geometry) as wkt from jobs where name = 'a'")
	if code != 0 || !strings.Contains(out, `"wkt": "POLYGON ((5 51, 5.1 51, 5.1 51.1, 5 51))"`) {
		t.Errorf("geometry: exit %d %s", code, out)
	}
	if code, out := cli(t, dir, "query", "--db", "jobs.db", "select nonsense from"); code != 1 || !strings.Contains(out, "query") {
		t.Errorf("bad SQL: exit %d %s", code, out)
	}
}

// A Parquet table in a folder named like a Hive partition gets no column
// from the folder's name.
func TestQueryHiveLikeFolder(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "year=2020"), 0o755)
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title\na\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "year=2020/jobs.parquet"); code != 0 {
		t.Fatal(out)
	}
	code, out := cli(t, dir, "query", "--db", "year=2020/jobs.parquet", "--format", "csv", "select count(*) as n from (describe jobs) where column_name = 'year'")
	if code != 0 || out != "n\n0\n" {
		t.Errorf("exit %d: %q, want no year column", code, out)
	}
}

// A cell that is not UTF-8 (a Latin-1 file) is kept where the store keeps
// it (SQLite) and refused, naming file, row and column, where it would
// become NULL (Parquet, DuckDB); a refused table leaves no file.
func TestInitNonUTF8(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "latin1.csv"), []byte("name,year\ncafe,2020\ncaf\xe9,2021\n"), 0o644)
	for _, db := range []string{"t.parquet", "t.duckdb"} {
		code, out := cli(t, dir, "init", "--from", "latin1.csv", "--db", db)
		if code != exitUsage || !strings.Contains(out, "latin1.csv") || !strings.Contains(out, "row 2") || !strings.Contains(out, `column "name"`) {
			t.Errorf("init --db %s: exit %d: %s", db, code, out)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "t.*")); len(left) > 0 {
			t.Errorf("init --db %s left %v", db, left)
		}
	}
	if code, out := cli(t, dir, "init", "--from", "latin1.csv", "--db", "t.db"); code != 0 {
		t.Fatalf("init --db t.db: exit %d: %s", code, out)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRow("select name from jobs where year = 2021").Scan(&name); err != nil || name != "caf\xe9" {
		t.Errorf("SQLite cell = %q, %v; want it kept", name, err)
	}
	db.Close()
	// query reads through DuckDB, which would show NULL: it shows the
	// byte escaped, and says so on stderr.
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"query", "--db", filepath.Join(dir, "t.db"), "--format", "csv", "select name from jobs where name like 'caf%' order by year"}, &stdout, &stderr)
	if code != 0 || stdout.String() != "name\ncafe\ncaf\\xE9\n" {
		t.Errorf("query: exit %d: %q\n%s", code, stdout.String(), stderr.String())
	}
	if e := stderr.String(); !strings.Contains(e, "not UTF-8") || !strings.Contains(e, "t.db") || !strings.Contains(e, `row 2, column \"name\"`) {
		t.Errorf("query: warning %q", e)
	}
	code, out := cli(t, dir, "query", "--db", "t.db", "--json", "select count(*) as n from jobs where name = 'caf\\xE9'")
	if code != 0 || !strings.Contains(out, `"n": 1`) {
		t.Errorf("query --json by the escaped text: exit %d: %s", code, out)
	}
	code, out = cli(t, dir, "export", "--db", "t.db", "--to", "out.parquet")
	if code != exitUsage || !strings.Contains(out, "t.db") || !strings.Contains(out, "row 2") || !strings.Contains(out, `column "name"`) {
		t.Errorf("export to Parquet: exit %d: %s", code, out)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "out.*")); len(left) > 0 {
		t.Errorf("export left %v", left)
	}
}

// A status another tool wrote into a SQLite table stops export with the
// file, row and column, named once.
func TestExportUnknownStatus(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title\na\nb\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	// Tables made now refuse such an edit; one an older version made
	// (no triggers) takes it.
	db, _ := sql.Open("sqlite", filepath.Join(dir, "jobs.db"))
	for _, q := range []string{`DROP TRIGGER jobs_status_insert`, `DROP TRIGGER jobs_status_update`, `UPDATE jobs SET status = 'done' WHERE title = 'b'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", "out.csv")
	if code != 1 || strings.Count(out, "jobs.db") != 1 || !strings.Contains(out, `row 2, column "status": unknown status "done"`) {
		t.Errorf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.csv")); !os.IsNotExist(err) {
		t.Error("out.csv written")
	}
}

// Tables another program wrote, with the user's columns only or an
// unknown status, work as --db directly: status counts their rows, or
// names the file, row and column of the bad status; the file is kept.
func TestForeignTablesAsDB(t *testing.T) {
	dir := t.TempDir()
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	lite, err := sql.Open("sqlite", filepath.Join(dir, "user.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE jobs (year INTEGER, title TEXT)",
		"INSERT INTO jobs VALUES (2020, 'a'), (2021, 'b')",
	} {
		if _, err := duck.Exec(q); err != nil {
			t.Fatal(err)
		}
		if _, err := lite.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	lite.Close()
	for _, q := range []string{
		"COPY jobs TO '" + filepath.Join(dir, "user.parquet") + "' (FORMAT parquet)",
		"COPY (SELECT *, CASE WHEN year = 2021 THEN 'done' END AS status FROM jobs) TO '" + filepath.Join(dir, "bad.parquet") + "' (FORMAT parquet)",
	} {
		if _, err := duck.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, db := range []string{"user.db", "user.parquet"} {
		code, out := cli(t, dir, "status", "--db", db, "--json")
		if code != 0 || !strings.Contains(out, `"total": 2`) || !strings.Contains(out, `"not_started": 2`) {
			t.Errorf("status --db %s: exit %d: %s", db, code, out)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, "bad.parquet"))
	code, out := cli(t, dir, "status", "--db", "bad.parquet")
	if code != 1 || !strings.Contains(out, "bad.parquet") || !strings.Contains(out, `row 2, column "status": unknown status "done"`) {
		t.Errorf("status of a table with an unknown status: exit %d: %s", code, out)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "bad.parquet")); !bytes.Equal(before, after) {
		t.Error("bad.parquet changed")
	}
}

// A GeoJSON geometry that init would have to change to store (a short
// position, a Z coordinate, an open or short ring) is refused, naming the
// feature; nothing is made.
func TestInitRefusesGeometriesItWouldChange(t *testing.T) {
	for name, geom := range map[string]string{
		"short position": `{"type":"Point","coordinates":[1]}`,
		"z coordinate":   `{"type":"Point","coordinates":[1,2,3]}`,
		"open ring":      `{"type":"Polygon","coordinates":[[[1,1],[2,2],[2,1],[1,2]]]}`,
		"short ring":     `{"type":"Polygon","coordinates":[[[1,1],[2,2]]]}`,
		"short line":     `{"type":"LineString","coordinates":[[1,1]]}`,
		"bad member":     `{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]},{"type":"MultiPoint","coordinates":[["a",2]]}]}`,
		"unknown type":   `{"type":"Circle","coordinates":[1,2]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			doc := `{"type":"FeatureCollection","features":[
				{"type":"Feature","properties":{"name":"ok"},"geometry":{"type":"Polygon","coordinates":[[[1,1],[2,1],[2,2],[1,1]]]}},
				{"type":"Feature","properties":{"name":"bad"},"geometry":` + geom + `}]}`
			os.WriteFile(filepath.Join(dir, "in.geojson"), []byte(doc), 0o644)
			code, out := cli(t, dir, "init", "--from", "in.geojson", "--db", "jobs.db")
			if code == 0 || !strings.Contains(out, "in.geojson: feature 2") {
				t.Errorf("exit %d, want an error naming feature 2:\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "jobs.db")); err == nil {
				t.Error("jobs.db was made")
			}
		})
	}
}
