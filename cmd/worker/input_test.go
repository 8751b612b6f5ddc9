package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/remote/remotetest"
)

// A CSV column with numbers written with leading zeros ("007") is text in
// every store init writes, in init --append, and when the CSV file is the
// table: "007" is never turned into 7 or 7.0.
func TestLeadingZerosStayText(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "z.csv"), []byte("tile,code,n\nA,007,1\nB,010,2\nC,123,3\n"), 0o644)
	for _, db := range []string{"z.db", "z.parquet", "z.duckdb", "z.csv.out.csv"} {
		if code, out := cli(t, dir, "init", "--from", "z.csv", "--db", db); code != 0 {
			t.Fatalf("init --db %s: exit %d\n%s", db, code, out)
		}
		rows := readRows(t, filepath.Join(dir, db))
		for i, want := range []string{"007", "010", "123"} {
			if got := rows[i].Data["code"]; got != want {
				t.Errorf("%s row %d: code = %#v, want %q", db, i+1, got, want)
			}
			if got := rows[i].Data["n"]; got != int64(i+1) {
				t.Errorf("%s row %d: n = %#v, want the integer %d", db, i+1, got, i+1)
			}
		}
		code, out := cli(t, dir, "export", "--db", db, "--to", db+".export.csv")
		b, _ := os.ReadFile(filepath.Join(dir, db+".export.csv"))
		if code != 0 || !strings.HasPrefix(string(b), "tile,code,n,") || !strings.Contains(string(b), "\nA,007,1,") {
			t.Errorf("export of %s: exit %d %s\n%s", db, code, out, b)
		}
	}

	// --append: "007" is a new key beside a stored "7" (a text column).
	os.WriteFile(filepath.Join(dir, "seven.csv"), []byte("tile,code,n\nS,7,9\nT,A1,8\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "seven.csv", "--db", "a.db"); code != 0 {
		t.Fatal(out)
	}
	os.WriteFile(filepath.Join(dir, "more.csv"), []byte("tile,code,n\nZ,007,10\n"), 0o644)
	if code, out := cli(t, dir, "init", "--append", "--from", "more.csv", "--db", "a.db", "--key", "code"); code != 0 {
		t.Fatalf("--append 007 beside 7: exit %d\n%s", code, out)
	}
	rows := readRows(t, filepath.Join(dir, "a.db"))
	if len(rows) != 3 || rows[0].Data["code"] != "7" || rows[2].Data["code"] != "007" {
		t.Errorf("after --append: %+v", rows)
	}
	if code, out := cli(t, dir, "init", "--append", "--from", "more.csv", "--db", "a.db", "--key", "code"); code != exitUsage || !strings.Contains(out, "code=007") {
		t.Errorf("--append of 007 again: exit %d\n%s", code, out)
	}
}

// worker run with the CSV file itself as the table sends "007" for a
// string parameter, as written.
func TestRunCSVLeadingZeros(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.csv"), []byte("tile,code\nA,007\nB,010\n"), 0o644)
	def := `{"id":"x","parameters":[{"name":"code","schema":{"type":"string"}}],
	 "process_graph":{"a":{"process_id":"text_concat","arguments":{"data":[{"from_parameter":"code"}]},"result":true}}}`
	os.WriteFile(filepath.Join(dir, "pc.json"), []byte(def), 0o644)
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
	code, out := cli(t, dir, "run", "--db", "run.csv", "--backend", "b0="+srv.URL, "--process", "pc.json", "--poll", "10ms", "--no-download")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	var bodies []string
	for _, j := range srv.Jobs() {
		bodies = append(bodies, string(j.Body))
	}
	all := strings.Join(bodies, "\n")
	if len(bodies) != 2 || !strings.Contains(all, `"data":["007"]`) || !strings.Contains(all, `"data":["010"]`) {
		t.Errorf("job bodies:\n%s", all)
	}
}

// init refuses, in every format alike, a geometry cell that a store would
// change or a run refuse: exit 2 naming file, row, column and reason,
// nothing written.
func TestInitStrictWKT(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ cell, why string }{
		"ewkt":     {"SRID=3857;POLYGON((0 0, 1 0, 1 1, 0 0))", "EPSG code in a column"},
		"trail":    {"POLYGON((0 0, 1 0, 1 1, 0 0)) trailing", "after the geometry"},
		"two":      {"POLYGON((0 0, 1 0, 1 1, 0 0)),POINT(5 5)", "several geometries"},
		"nan":      {"POLYGON((0 0, NaN 0, 1 1, 0 0))", "not a finite number"},
		"unclosed": {"POLYGON((0 0, 1 0, 1 2, 0 1))", "not closed"},
		"short":    {"POLYGON((0 0, 1 0, 0 0))", "at least 4 positions"},
		"empty":    {"POLYGON EMPTY", "EMPTY"},
	} {
		in := "g_" + name + ".csv"
		os.WriteFile(filepath.Join(dir, in), []byte("tile,geometry\nA,POINT (1 2)\nB,\""+c.cell+"\"\n"), 0o644)
		for _, db := range []string{"t.db", "t.csv", "t.parquet", "t.duckdb"} {
			code, out := cli(t, dir, "init", "--from", in, "--db", db)
			if code != exitUsage || !strings.Contains(out, in+": row 2, column \"geometry\"") || !strings.Contains(out, c.why) {
				t.Errorf("%s to %s: exit %d, want 2 naming row 2 and %q:\n%s", in, db, code, c.why, out)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "t.*")); len(left) > 0 {
				t.Fatalf("%s to %s left %v", in, db, left)
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "ok.csv"), []byte("tile,geometry\nA,\"POLYGON Z((0 0 1, 1 0 1, 1 1 1, 0 0 1))\"\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "ok.csv", "--db", "ok.parquet"); code != 0 {
		t.Errorf("a 3D polygon: exit %d\n%s", code, out)
	}
}

// export to GeoJSON of a table holding a NaN coordinate (written by
// another tool) names the row and column instead of a JSON encoder's error.
func TestExportGeoJSONNaN(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("tile,geometry\nA,POINT (1 2)\nB,POINT (3 4)\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "t.db"); code != 0 {
		t.Fatal(out)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("update jobs set geometry = 'POLYGON((0 0, NaN 0, 1 1, 0 0))' where tile = 'B'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out := cli(t, dir, "export", "--db", "t.db", "--to", "t.geojson")
	if code != exitUsage || !strings.Contains(out, `t.db: row 2, column "geometry"`) || !strings.Contains(out, "not a finite number") || strings.Contains(out, "MarshalJSON") {
		t.Errorf("exit %d, want 2 naming row 2:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "t.geojson")); err == nil {
		t.Error("t.geojson was written")
	}
}

// A Latin-1 title kept by a SQLite table is a bad row found before the
// run, naming row and column, not a job titled with U+FFFD.
func TestRunRefusesTextNotUTF8(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title,code\ncafe,a\ncaf\xe9-l1,b\n"), 0o644)
	def := `{"id":"x","parameters":[{"name":"code","schema":{"type":"string"}}],
	 "process_graph":{"a":{"process_id":"text_concat","arguments":{"data":[{"from_parameter":"code"}]},"result":true}}}`
	os.WriteFile(filepath.Join(dir, "pc.json"), []byte(def), 0o644)
	for _, db := range []string{"t.db", "t.csv"} {
		if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", db); code != 0 {
			t.Fatal(out)
		}
		code, out := cli(t, dir, "check", "--db", db, "--process", "pc.json")
		if code != exitUsage || !strings.Contains(out, `row 2, column "title"`) || !strings.Contains(out, "not UTF-8") {
			t.Errorf("check %s: exit %d\n%s", db, code, out)
		}
		srv := remotetest.NewServer(remotetest.Options{})
		defer srv.Close()
		t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
		code, out = cli(t, dir, "run", "--db", db, "--backend", "b0="+srv.URL, "--process", "pc.json", "--poll", "10ms", "--no-download")
		if code != exitUsage || !strings.Contains(out, `row 2, column "title"`) || len(srv.Jobs()) != 0 {
			t.Errorf("run %s: exit %d, %d jobs\n%s", db, code, len(srv.Jobs()), out)
		}
	}
}

// Invalid input exits 2 (bad usage or invalid input), whatever command
// meets it, with a message of one line where a library would say more.
func TestInvalidInputExits2(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) { os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644) }
	write("ok.csv", "title,code\na,x\n")
	write("dup.csv", "tile,tile\nA,B\n")
	write("noname.csv", ",year\nA,2019\n")
	write("empty.parquet", "")
	write("garbage.db", "garbage\n")
	write("garbage.duckdb", "garbage, and more garbage\n")
	write("latin1.csv", "name\ncaf\xe9\n")
	write("p_arr.json", "[1, 2]")
	write("p_text.json", "nope")
	write("p_nograph.json", `{"id": "x"}`)
	if code, out := cli(t, dir, "init", "--from", "ok.csv", "--db", "have.db"); code != 0 {
		t.Fatal(out)
	}
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
	docs := remotetest.NewDocServer(map[string][]byte{})
	defer docs.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--db", "dup.csv"}, `column "tile" appears twice`},
		{[]string{"status", "--db", "noname.csv"}, "column 1 has no name"},
		{[]string{"check", "--db", "ok.csv", "--process", "nonexist.json"}, "nonexist.json: no such file"},
		{[]string{"check", "--db", "ok.csv", "--process", "p_text.json"}, "p_text.json: not a JSON process definition"},
		{[]string{"check", "--db", "ok.csv", "--process", "p_nograph.json"}, "p_nograph.json: process_graph"},
		{[]string{"check", "--db", "ok.csv", "--process", "p_arr.json"}, "p_arr.json: not a process definition: want a JSON object with process_graph"},
		{[]string{"check", "--db", "ok.csv", "--namespace", docs.URL + "/nope.json"}, "404"},
		{[]string{"check", "--db", "ok.csv", "--process-id", "nope", "--backend", "b0=" + srv.URL}, `user-defined process "nope"`},
		{[]string{"status", "--db", "empty.parquet"}, "empty.parquet: not a readable Parquet file: Invalid Input Error"},
		{[]string{"init", "--from", "empty.parquet", "--db", "x.db"}, "not a readable Parquet file"},
		{[]string{"status", "--db", "garbage.db"}, "not a SQLite database"},
		{[]string{"init", "--from", "garbage.duckdb", "--db", "x.db"}, "not a DuckDB database file"},
		{[]string{"init", "--from", "latin1.csv", "--db", "x.parquet"}, "not UTF-8"},
		{[]string{"init", "--from", "ok.csv", "--db", "have.db"}, "have.db already holds a job table"},
	} {
		code, out := cli(t, dir, c.args...)
		if code != exitUsage || !strings.Contains(out, c.want) || strings.Contains(out, "LINE 1") || strings.Contains(out, "Go value") {
			t.Errorf("%v: exit %d, want 2 saying %q:\n%s", c.args, code, c.want, out)
		}
	}
}
