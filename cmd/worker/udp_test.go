package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

const geomUDP = `{"id": "area_stats", "parameters": [
  {"name": "geometry", "description": "area", "schema": {"type": "object", "subtype": "geojson"}},
  {"name": "year", "description": "year", "schema": {"type": "integer"}},
  {"name": "scale", "description": "scale", "schema": {"type": "number"}, "optional": true}],
 "process_graph": {"a": {"process_id": "aggregate_spatial", "arguments": {"geometries": {"from_parameter": "geometry"}}, "result": true}}}`

// polygons writes a FeatureCollection of n squares with a year each.
func polygons(n int) string {
	var fs []string
	for i := range n {
		x := 5 + float64(i)/10
		fs = append(fs, fmt.Sprintf(`{"type": "Feature", "properties": {"name": "a%d", "year": %d},
 "geometry": {"type": "Polygon", "coordinates": [[[%g, 51], [%g, 51], [%g, 51.1], [%g, 51]]]}}`, i, 2000+i%20, x, x+0.05, x+0.05, x))
	}
	return `{"type": "FeatureCollection", "features": [` + strings.Join(fs, ",\n") + `]}`
}

func readRows(t *testing.T, db string) []driver.Job {
	t.Helper()
	store, err := driver.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Select(t.Context(), driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// 50 polygons from GeoJSON -> init -> run --process-id against two fake
// back-ends: every job references the stored UDP and carries its polygon
// as a GeoJSON geometry; each back-end was asked for the UDP once.
func TestRunStoredUDPOverPolygons(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "aois.geojson"), []byte(polygons(50)), 0o644)
	if code, out := cli(t, dir, "init", "--from", "aois.geojson", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	var srvs []*remotetest.Server
	args := []string{"run", "--db", "jobs.db", "--process-id", "area_stats", "--poll", "10ms", "--no-download"}
	for i := range 2 {
		srv := remotetest.NewServer(remotetest.Options{})
		defer srv.Close()
		srv.AddProcess("area_stats", json.RawMessage(geomUDP))
		t.Setenv(fmt.Sprintf("OPENEO_B%d_TOKEN", i), srv.ValidToken())
		args = append(args, "--backend", fmt.Sprintf("b%d=%s,parallel=5", i, srv.URL))
		srvs = append(srvs, srv)
	}
	if code, out := cli(t, dir, args...); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	jobs := 0
	for _, srv := range srvs {
		if n := srv.Requests()["GET /process_graphs/{process_graph_id}"]; n != 1 {
			t.Errorf("UDP fetched %d times from one back-end, want 1", n)
		}
		for _, j := range srv.Jobs() {
			jobs++
			var body struct {
				Process struct {
					ProcessGraph map[string]struct {
						ProcessID string         `json:"process_id"`
						Namespace *string        `json:"namespace"`
						Arguments map[string]any `json:"arguments"`
						Result    bool           `json:"result"`
					} `json:"process_graph"`
				} `json:"process"`
			}
			json.Unmarshal(j.Body, &body)
			n := body.Process.ProcessGraph["areastats1"]
			geom, _ := n.Arguments["geometry"].(map[string]any)
			if n.ProcessID != "area_stats" || n.Namespace != nil || !n.Result || geom["type"] != "Polygon" {
				t.Errorf("job %s: %s", j.ID, j.Body)
			}
			if _, ok := n.Arguments["scale"]; ok {
				t.Errorf("optional parameter without value sent: %s", j.Body)
			}
		}
	}
	if jobs != 50 {
		t.Errorf("%d jobs, want 50", jobs)
	}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Finished {
			t.Errorf("row %d: %s %s", r.Key, r.Status, r.LastError)
		}
	}
}

// A 1,000-row table with one bad cell: run refuses before any request,
// naming the row and column, and leaves the table as it was; with
// --skip-invalid the row is skipped and the 999 others finish.
func TestRunRefusesBadRowsBeforeAnyRequest(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("name,year,geometry\n")
	for i := range 1000 {
		year := fmt.Sprint(2000 + i%20)
		if i == 637 {
			year = "abc"
		}
		fmt.Fprintf(&b, "r%d,%s,POINT (5 %d)\n", i, year, i%80)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(b.String()), 0o644)
	def := filepath.Join(dir, "udp.json")
	os.WriteFile(def, []byte(geomUDP), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	before := readRows(t, filepath.Join(dir, "jobs.db"))
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
	docs := remotetest.NewDocServer(map[string][]byte{"/udp.json": []byte(geomUDP)})
	defer docs.Close()

	for _, source := range [][]string{{"--process", def}, {"--namespace", docs.URL + "/udp.json"}} {
		args := append([]string{"run", "--db", "jobs.db", "--backend", "b0=" + srv.URL, "--poll", "10ms", "--no-download"}, source...)
		code, out := cli(t, dir, args...)
		if code != exitUsage || !strings.Contains(out, `row 638, column "year"`) || !strings.Contains(out, `"abc"`) ||
			!strings.Contains(out, "1 not_started row ") {
			t.Fatalf("%v: exit %d, want 2 naming row 638 and column year:\n%s", source, code, out)
		}
		if n := srv.TotalRequests(); n != 0 {
			t.Fatalf("%v: %d requests reached the back-end before the refusal", source, n)
		}
		after := readRows(t, filepath.Join(dir, "jobs.db"))
		for i := range before {
			if before[i].Status != after[i].Status || before[i].LastError != after[i].LastError {
				t.Fatalf("row %d changed: %+v", before[i].Key, after[i])
			}
		}
	}
	if n := len(docs.Requests()); n != 1 {
		t.Errorf("remote definition fetched %d times in a run, want 1", n)
	}

	// worker check says the same, changes nothing, and prints a sample job.
	code, out := cli(t, dir, "check", "--db", "jobs.db", "--process", def)
	if code != exitUsage || !strings.Contains(out, `row 638, column "year"`) || !strings.Contains(out, `"process_graph"`) {
		t.Errorf("check: exit %d\n%s", code, out)
	}

	code, out = cli(t, dir, "run", "--db", "jobs.db", "--backend", "b0="+srv.URL+",parallel=20,queue=20", "--poll", "10ms",
		"--no-download", "--process", def, "--skip-invalid")
	if code != 0 {
		t.Fatalf("--skip-invalid: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "waiting before the next") {
		t.Errorf("a back-end was paused:\n%s", out)
	}
	counts := map[driver.Status]int{}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		counts[r.Status]++
		if r.Status == driver.Skipped && (r.Key != before[637].Key || !strings.Contains(r.LastError, `column "year"`)) {
			t.Errorf("skipped row %d: %q", r.Key, r.LastError)
		}
	}
	if counts[driver.Finished] != 999 || counts[driver.Skipped] != 1 {
		t.Errorf("counts = %v, want 999 finished, 1 skipped", counts)
	}
}

// The settings of a job creator, checked by worker check against a
// remote definition: each mistake is named, with exit status 2.
func TestCheckSettings(t *testing.T) {
	dir := t.TempDir()
	docs := remotetest.NewDocServer(map[string][]byte{"/p.json": []byte(geomUDP)})
	defer docs.Close()
	ns := docs.URL + "/p.json"
	os.WriteFile(filepath.Join(dir, "one.csv"), []byte("name,year,aoi,job_options\n"+
		"a,2020,\"POLYGON ((5 51, 6 51, 6 52, 5 51))\",\"{\"\"driver-memory\"\": \"\"4g\"\"}\"\n"+
		"b,2021,POINT (5 51),\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "two.csv"), []byte("name,year,aoi,aoi2\na,2020,POINT (5 51),POINT (6 51)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "opts.json"), []byte(`{"executor-memory": "2g", "driver-memory": "1g"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "udp.json"), []byte(geomUDP), 0o644)
	for _, db := range []string{"one", "two"} {
		if code, out := cli(t, dir, "init", "--from", db+".csv", "--db", db+".db"); code != 0 {
			t.Fatal(out)
		}
	}
	tests := []struct {
		args []string
		code int
		want []string
	}{
		// The single WKT column aoi feeds the single GeoJSON parameter.
		{[]string{"--db", "one.db", "--namespace", ns}, 0, []string{`"type": "Polygon"`, `"process_id": "area_stats"`,
			`"namespace": "` + ns, `"driver-memory": "4g"`}},
		{[]string{"--db", "one.db", "--namespace", ns, "--job-options", "opts.json"}, 0, []string{`"executor-memory": "2g"`, `"driver-memory": "4g"`}},
		{[]string{"--db", "one.db", "--namespace", ns, "--param", "geometry=aoi", "--default", "scale=2.5"}, 0, []string{`"scale": 2.5`}},
		{[]string{"--db", "one.db", "--process", "udp.json"}, 0, []string{`"geometries": {`, `"title": "area_stats row 1"`}},
		{[]string{"--db", "one.db", "--namespace", ns, "--param", "nope=aoi"}, 2, []string{`no parameter "nope"`}},
		{[]string{"--db", "one.db", "--namespace", ns, "--param", "geometry=nope"}, 2, []string{`no column "nope"`}},
		{[]string{"--db", "one.db", "--namespace", ns, "--default", "scale=abc"}, 2, []string{"--default scale", "not JSON"}},
		{[]string{"--db", "one.db", "--namespace", ns, "--default", `scale="x"`}, 2, []string{`default of parameter "scale"`, "want number"}},
		{[]string{"--db", "two.db", "--namespace", ns}, 2, []string{"several geometry columns (aoi, aoi2)", "--param geometry=COLUMN"}},
		{[]string{"--db", "one.db", "--namespace", "user"}, 2, []string{"--namespace wants the http(s) URL"}},
		{[]string{"--db", "one.db", "--process", "udp.json", "--process-id", "x"}, 2, []string{"excludes"}},
		{[]string{"--db", "one.db", "--process-id", "x"}, 2, []string{"give --backend"}},
	}
	for _, tt := range tests {
		code, out := cli(t, dir, append([]string{"check"}, tt.args...)...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d\n%s", tt.args, code, tt.code, out)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
	for _, r := range docs.Requests() {
		if r.Authorization != "" {
			t.Errorf("definition host got Authorization %q", r.Authorization)
		}
	}
}

// check --validate sends the sample job to each back-end's POST
// /validation and reports what it finds.
func TestCheckValidate(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("year,geometry\n2020,POINT (5 51)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "udp.json"), []byte(geomUDP), 0o644)
	os.WriteFile(filepath.Join(dir, "magic.json"), []byte(strings.Replace(geomUDP, `"aggregate_spatial"`, `"magic_process"`, 1)), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	srv.AddProcess("area_stats", json.RawMessage(geomUDP))
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
	code, out := cli(t, dir, "check", "--db", "jobs.db", "--process-id", "area_stats", "--backend", "b0="+srv.URL, "--validate")
	if code != 0 || !strings.Contains(out, "b0: the sample job is valid") {
		t.Errorf("stored UDP: exit %d\n%s", code, out)
	}
	code, out = cli(t, dir, "check", "--db", "jobs.db", "--process", "magic.json", "--backend", "b0="+srv.URL, "--validate")
	if code != 1 || !strings.Contains(out, "ProcessUnsupported") || !strings.Contains(out, "magic_process") {
		t.Errorf("unknown process: exit %d\n%s", code, out)
	}
	if n := srv.Requests()["POST /validation"]; n != 2 {
		t.Errorf("POST /validation = %d, want 2", n)
	}
	if n := srv.Requests()["POST /jobs"]; n != 0 {
		t.Errorf("check created %d jobs", n)
	}
}

// Geometry columns of GeoParquet and DuckDB tables (GEOMETRY, not text)
// feed a GeoJSON parameter as well as WKT text does.
func TestCheckGeometryColumnsOfEveryStore(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "aois.geojson"), []byte(polygons(3)), 0o644)
	docs := remotetest.NewDocServer(map[string][]byte{"/p.json": []byte(geomUDP)})
	defer docs.Close()
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		if code, out := cli(t, dir, "init", "--from", "aois.geojson", "--db", db); code != 0 {
			t.Fatalf("%s: %s", db, out)
		}
		code, out := cli(t, dir, "check", "--db", db, "--namespace", docs.URL+"/p.json")
		if code != 0 || !strings.Contains(out, `"type": "Polygon"`) || !strings.Contains(out, `"year": 2000`) ||
			!strings.Contains(out, "[\n                  5.0,\n                  51.0\n                ]") {
			t.Errorf("%s: exit %d\n%s", db, code, out)
		}
	}
}
