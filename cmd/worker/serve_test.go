package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/dashboard"
	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// writeServeTable writes a job table of n rows at dir/jobs.db: a grid of
// 0.1° squares, the statuses in turn, with ids, back-ends, times, usage,
// costs and last_error as a run leaves them. It returns the table's path.
func writeServeTable(tb testing.TB, dir string, n int) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("tile,geometry,id,backend_name,status,start_time,running_start_time,updated_at,cpu,memory,duration,costs,attempts,last_error\n")
	statuses := driver.Statuses()
	side := 1
	for side*side < n {
		side++
	}
	for i := range n {
		x, y := 5+float64(i%side)*0.1, 51+float64(i/side)*0.1
		st := statuses[i%len(statuses)]
		id, backend, start, running, updated, cpu, lastErr, costs := "", "", "", "", "", "", "", ""
		if st != driver.NotStarted && st != driver.Skipped {
			id, backend = fmt.Sprintf("j-%d", i), []string{"vito", "cdse"}[i%2]
			start = fmt.Sprintf("2026-01-01T00:%02d:00Z", i%60)
			updated = fmt.Sprintf("2026-01-01T01:%02d:00Z", i%60)
			costs = "1.5"
		}
		switch st {
		case driver.Running, driver.Finished, driver.Error, driver.Canceled:
			running = fmt.Sprintf("2026-01-01T00:%02d:30Z", i%60)
			cpu = fmt.Sprintf("%d cpu-seconds", 10+i)
		}
		if st == driver.Error || st == driver.StartFailed {
			lastErr = fmt.Sprintf("row %d: out of memory", i)
		}
		fmt.Fprintf(&b, "t%d,\"POLYGON((%g %g,%g %g,%g %g,%g %g,%g %g))\",%s,%s,%s,%s,%s,%s,%s,,,%s,1,%s\n",
			i, x, y, x+0.09, y, x+0.09, y+0.09, x, y+0.09, x, y, id, backend, st, start, running, updated, cpu, costs, lastErr)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	db := filepath.Join(dir, "jobs.db")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"init", "--from", filepath.Join(dir, "in.csv"), "--db", db}, &out, &out); code != 0 {
		tb.Fatalf("init: %s", out.String())
	}
	return db
}

// statusJSON is `worker status --json` of a table.
type statusJSON struct {
	Total    int            `json:"total"`
	ByStatus map[string]int `json:"by_status"`
}

func workerStatus(t *testing.T, db string) statusJSON {
	t.Helper()
	var out bytes.Buffer
	if code := run(t.Context(), []string{"status", "--db", db, "--json"}, &out, &out); code != 0 {
		t.Fatalf("status: %s", out.String())
	}
	var s statusJSON
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The dashboard reads every table format as worker query does: one
// footprint per row (WKT in SQLite and CSV, GEOMETRY in Parquet and
// DuckDB), coloured by status, and the counts of worker status --json.
func TestServeDataEveryFormat(t *testing.T) {
	dir := t.TempDir()
	db := writeServeTable(t, dir, 23)
	want := workerStatus(t, db)
	for _, to := range []string{"jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		var out bytes.Buffer
		if code := run(t.Context(), []string{"export", "--db", db, "--to", filepath.Join(dir, to)}, &out, &out); code != 0 {
			t.Fatalf("export %s: %s", to, out.String())
		}
	}
	for _, name := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		t.Run(name, func(t *testing.T) {
			loc := filepath.Join(dir, name)
			srv, err := dashboard.New(dashboard.Options{Read: read(loc)})
			if err != nil {
				t.Fatal(err)
			}
			d, err := srv.Data(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Features) != want.Total || len(d.Unmapped) != 0 {
				t.Fatalf("%d features, %d unmapped %v; want %d features", len(d.Features), len(d.Unmapped), d.Unmapped, want.Total)
			}
			if d.Counts.Total != want.Total || !mapsEqual(d.Counts.ByStatus, want.ByStatus) {
				t.Errorf("counts %+v, worker status --json says %+v", d.Counts, want)
			}
			status := map[string]int{}
			for _, f := range d.Features {
				status[f.Properties.Status]++
				if f.Properties.Color != dashboard.StatusColors[driver.Status(f.Properties.Status)] {
					t.Errorf("row %d (%s) coloured %s", f.ID, f.Properties.Status, f.Properties.Color)
				}
				var g struct {
					Type        string        `json:"type"`
					Coordinates [][][]float64 `json:"coordinates"`
				}
				if err := json.Unmarshal(f.Geometry, &g); err != nil || g.Type != "Polygon" || len(g.Coordinates[0]) != 5 {
					t.Fatalf("row %d: geometry %s (%v)", f.ID, f.Geometry, err)
				}
			}
			if !mapsEqual(status, want.ByStatus) {
				t.Errorf("features per status %v, want %v", status, want.ByStatus)
			}
			if got := d.Totals.CPU["cpu-seconds"]; got == 0 {
				t.Errorf("cpu total %v", d.Totals.CPU)
			}
			if len(d.Progress) == 0 || d.Progress[len(d.Progress)-1].Submitted == 0 {
				t.Errorf("progress %v", d.Progress)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startServe runs `worker serve` on db in this process until the test
// ends, and returns its base URL, which it reads from the log line.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), io.Discard, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d", code)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "url="); ok {
			url, _, _ := strings.Cut(rest, " ")
			go io.Copy(io.Discard, pr)
			return strings.TrimSuffix(url, "/")
		}
		t.Log(line)
	}
	t.Fatal("serve ended before it listened")
	return ""
}

// The files under --root-dir are served read-only and nothing outside it:
// no "..", no encoded "..", no symbolic link out of it; and the dashboard
// takes no writes.
func TestServeFilesConfined(t *testing.T) {
	dir := t.TempDir()
	db := writeServeTable(t, dir, 3)
	root := filepath.Join(dir, "results")
	os.MkdirAll(filepath.Join(root, "job_j-1"), 0o755)
	os.WriteFile(filepath.Join(root, "job_j-1", "job_j-1_errors.json"), []byte(`[{"message":"boom"}]`), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("hunter2"), 0o644)
	if err := os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(root, "job_j-1", "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "loop"), filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "--db", db, "--root-dir", root)

	get := func(path string) (int, string) {
		// A raw request line: the client must not clean the path first.
		req, err := http.NewRequest("GET", base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/files/job_j-1/job_j-1_errors.json"); code != 200 || body != `[{"message":"boom"}]` {
		t.Errorf("error log: %d %q", code, body)
	}
	for _, p := range []string{"/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/job_j-1/..%2f..%2fsecret.txt",
		"/files/..%5csecret.txt", "/files/job_j-1/link.txt", "/files/up/secret.txt", "/../secret.txt", "/files/up/jobs.db",
		"/files/loop", "/files/loop/x"} {
		// Refused as forbidden or not found, never as a server error.
		if code, body := get(p); code != http.StatusForbidden && code != http.StatusNotFound || strings.Contains(body, "hunter2") {
			t.Errorf("GET %s: %d %q, want 403 or 404", p, code, body)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		req, _ := http.NewRequest(m, base+"/files/job_j-1/job_j-1_errors.json", strings.NewReader("x"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, res.StatusCode)
		}
	}
	// A page elsewhere whose host name points at 127.0.0.1 reads nothing.
	req, _ := http.NewRequest("GET", base+"/api/data", nil)
	req.Host = "evil.example:80"
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %d, want 421", res.StatusCode)
	}
	// The row links to its error log.
	var d dashboard.Data
	res, err := http.Get(base + "/api/data")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&d)
	res.Body.Close()
	if f := d.Files[1]; f.ErrorLog != "files/job_j-1/job_j-1_errors.json" || f.Dir != "files/job_j-1/" {
		t.Errorf("row 1 files %+v", f)
	}
	if len(d.Files) != 1 {
		t.Errorf("files of %d rows, want only row 1's: %+v", len(d.Files), d.Files)
	}
}

// BenchmarkServe times the page and /api/data of a 1,000-row table (the
// data handler reads the whole table each time, as the page's polling
// does), with reading the table alone as the baseline: /api/data over
// read is the dashboard's own cost.
func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	db := writeServeTable(b, dir, 1000)
	for _, format := range []string{"jobs.db", "jobs.parquet"} {
		loc := filepath.Join(dir, format)
		if format != "jobs.db" {
			var out bytes.Buffer
			if code := run(context.Background(), []string{"export", "--db", db, "--to", loc}, &out, &out); code != 0 {
				b.Fatal(out.String())
			}
		}
		srv, err := dashboard.New(dashboard.Options{Read: read(loc)})
		if err != nil {
			b.Fatal(err)
		}
		// The baseline: reading the table alone, as every data request does.
		b.Run(format+"/read", func(b *testing.B) {
			for b.Loop() {
				if _, err := readSnapshot(context.Background(), loc); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, path := range []string{"/", "/app.js", "/api/data", "/api/data+gzip"} {
			b.Run(format+path, func(b *testing.B) {
				// +gzip: as a browser asks (Accept-Encoding); resp-bytes
				// over the plain /api/data's is the compression ratio.
				target, gz := strings.CutSuffix(path, "+gzip")
				size := 0
				for b.Loop() {
					req := httptest.NewRequest("GET", target, nil)
					if gz {
						req.Header.Set("Accept-Encoding", "gzip")
					}
					rec := httptest.NewRecorder()
					srv.ServeHTTP(rec, req)
					if rec.Code != 200 || gz != (rec.Header().Get("Content-Encoding") == "gzip") {
						b.Fatalf("%s: %d %q %s", path, rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.String())
					}
					size = rec.Body.Len()
				}
				b.ReportMetric(float64(size), "resp-bytes")
			})
		}
	}
}

// The dashboard reads a table while worker run writes it, on every
// format: every read succeeds with every row on the map, the run finishes
// every job undisturbed, and the dashboard then shows them finished.
func TestServeDuringRun(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	srv.AddProcess("area_stats", json.RawMessage(geomUDP))
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())
	const n = 8
	for _, name := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "aois.geojson"), []byte(polygons(n)), 0o644)
			db := filepath.Join(dir, name)
			var out bytes.Buffer
			if code := run(t.Context(), []string{"init", "--from", filepath.Join(dir, "aois.geojson"), "--db", db}, &out, &out); code != 0 {
				t.Fatal(out.String())
			}
			dash, err := dashboard.New(dashboard.Options{Read: read(db)})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan string, 1)
			go func() {
				var out bytes.Buffer
				code := run(t.Context(), []string{"run", "--db", db, "--process-id", "area_stats", "--poll", "10ms", "--no-download",
					"--backend", "b0=" + srv.URL + ",parallel=2"}, &out, &out)
				if code != 0 {
					done <- fmt.Sprintf("run: exit %d\n%s", code, out.String())
				}
				close(done)
			}()
			reads := 0
			for running := true; running; {
				select {
				case msg, ok := <-done:
					if ok {
						t.Fatal(msg)
					}
					running = false
				default:
				}
				d, err := dash.Data(t.Context())
				if err != nil {
					t.Fatalf("read %d during the run: %v", reads+1, err)
				}
				if d.Counts.Total != n || len(d.Features) != n {
					t.Fatalf("read %d during the run: %d rows, %d on the map, want %d", reads+1, d.Counts.Total, len(d.Features), n)
				}
				reads++
			}
			d, err := dash.Data(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if d.Counts.ByStatus["finished"] != n {
				t.Errorf("after the run (read %d times during it): %v", reads, d.Counts.ByStatus)
			}
		})
	}
}

// read reads the table at location as worker serve does.
func read(location string) func(context.Context) (*dashboard.Table, error) {
	return func(ctx context.Context) (*dashboard.Table, error) { return readSnapshot(ctx, location) }
}

// A --root-dir that is not there yet (a dashboard started before the run)
// is no error: its files are served once it is there.
func TestServeRootDirLater(t *testing.T) {
	dir := t.TempDir()
	db := writeServeTable(t, dir, 3)
	root := filepath.Join(dir, "results")
	base := startServe(t, "--db", db, "--root-dir", root)
	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/files/job_j-1/job_j-1_errors.json"); code != http.StatusNotFound {
		t.Errorf("before the folder is there: %d %q, want 404", code, body)
	}
	os.MkdirAll(filepath.Join(root, "job_j-1"), 0o755)
	os.WriteFile(filepath.Join(root, "job_j-1", "job_j-1_errors.json"), []byte(`[{"message":"boom"}]`), 0o644)
	if code, body := get("/files/job_j-1/job_j-1_errors.json"); code != 200 || body != `[{"message":"boom"}]` {
		t.Errorf("once the folder is there: %d %q", code, body)
	}
	var d dashboard.Data
	_, body := get("/api/data")
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if f := d.Files[1]; !d.HasRoot || f.ErrorLog != "files/job_j-1/job_j-1_errors.json" {
		t.Errorf("row 1 files %+v (has_root %v)", f, d.HasRoot)
	}
}

// TestServeUsage: each wrong flag of serve is bad usage (exit 2) with one
// line naming the flag, before anything listens.
func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	db := writeServeTable(t, dir, 3)
	geojson := writeFile(t, dir, "x.geojson", `{"type": "FeatureCollection", "features": []}`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--db", db, "--addr", "nonsense"}, "--addr nonsense"},
		{[]string{"--db", db, "--addr", "127.0.0.1:99999"}, "--addr 127.0.0.1:99999"},
		{[]string{"--db", filepath.Join(dir, "nonexist.db")}, "--db " + filepath.Join(dir, "nonexist.db") + ": no such job table"},
		{[]string{"--db", geojson}, "--db: " + geojson + ": no store driver"},
		{[]string{"--db", db, "--geometry-column", "nosuch"}, `--geometry-column "nosuch" is not a column`},
		{[]string{"--db", db, "--interval", "1ns"}, "--interval must be at least 500ms"},
	} {
		code, _, errOut := runCLI(t, append([]string{"serve"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("serve %v: exit %d, %q; want 2 and one line with %q", c.args, code, errOut, c.want)
		}
	}
}
