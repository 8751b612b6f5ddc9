package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// A not_started row with a backend_name runs on that back-end only; a
// name that is not configured is a row error the check finds (issue 9),
// in any page of the table: run refuses, naming each such row, and with
// --skip-invalid skips them and runs the rest.
func TestRowsGivenToABackend(t *testing.T) {
	dir := t.TempDir()
	defer func(p int) { checkPage = p }(checkPage)
	checkPage = 40 // pages of a small table
	n := 2*checkPage + 30
	unknown := map[int]bool{4: true, checkPage + 10: true, n - 1: true} // 0-based rows, one per page
	var b strings.Builder
	b.WriteString("name,year,geometry,backend_name\n")
	for i := range n {
		backend := ""
		switch {
		case unknown[i]:
			backend = "nowhere"
		case i%100 == 1:
			backend = "b1"
		}
		fmt.Fprintf(&b, "r%d,%d,POINT (5 %d),%s\n", i, 2000+i%20, i%80, backend)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(b.String()), 0o644)
	def := filepath.Join(dir, "udp.json")
	os.WriteFile(def, []byte(geomUDP), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	var servers []*remotetest.Server
	var backends []string
	for i := range 2 {
		srv := remotetest.NewServer(remotetest.Options{})
		defer srv.Close()
		servers = append(servers, srv)
		t.Setenv(fmt.Sprintf("OPENEO_B%d_TOKEN", i), srv.ValidToken())
		backends = append(backends, "--backend", fmt.Sprintf("b%d=%s,parallel=50,queue=50", i, srv.URL))
	}
	wantRows := []string{`row 5, column "backend_name"`, fmt.Sprintf(`row %d, column "backend_name"`, checkPage+11), fmt.Sprintf(`row %d, column "backend_name"`, n)}
	code, out := cli(t, dir, append([]string{"check", "--db", "jobs.db", "--process", def}, backends...)...)
	for _, w := range wantRows {
		if code != exitUsage || !strings.Contains(out, w) || !strings.Contains(out, `"nowhere" is not configured`) || !strings.Contains(out, "3 not_started rows") {
			t.Fatalf("check: exit %d, want 2 naming %s:\n%s", code, w, out)
		}
	}
	run := append([]string{"run", "--db", "jobs.db", "--poll", "10ms", "--no-download", "--process", def}, backends...)
	if code, out := cli(t, dir, run...); code != exitUsage || !strings.Contains(out, wantRows[1]) {
		t.Fatalf("run: exit %d, want 2:\n%s", code, out)
	}
	for _, srv := range servers {
		if r := srv.TotalRequests(); r != 0 {
			t.Fatalf("%d requests before the refusal", r)
		}
	}
	if code, out := cli(t, dir, append(run, "--skip-invalid")...); code != 0 {
		t.Fatalf("run --skip-invalid: exit %d\n%s", code, out)
	}
	counts := map[string]int{}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		i := int(r.Key - 1)
		counts[string(r.Status)+" "+r.Backend]++
		switch {
		case unknown[i]:
			if r.Status != driver.Skipped || !strings.Contains(r.LastError, `"nowhere" is not configured`) {
				t.Errorf("row %d: %s %q", r.Key, r.Status, r.LastError)
			}
		case i%100 == 1:
			if r.Status != driver.Finished || r.Backend != "b1" {
				t.Errorf("row %d given to b1: %s on %s", r.Key, r.Status, r.Backend)
			}
		}
	}
	if counts["finished b0"] == 0 || counts["finished b0"]+counts["finished b1"] != n-3 {
		t.Errorf("counts %v", counts)
	}
}

// A pinned row that ends start_failed on its back-end keeps the pin
// through worker retry, and the next run runs it there, never on the
// other back-end (issue 9, deliverable 8); a free row retried is free.
func TestRetryKeepsPinnedBackend(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("name,year,geometry,backend_name\nr0,2000,POINT (5 1),b1\nr1,2001,POINT (5 2),\n"), 0o644)
	def := filepath.Join(dir, "udp.json")
	os.WriteFile(def, []byte(geomUDP), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	var servers []*remotetest.Server
	run := []string{"run", "--db", "jobs.db", "--poll", "10ms", "--no-download", "--process", def, "--max-start-attempts", "1"}
	for i := range 2 {
		srv := remotetest.NewServer(remotetest.Options{})
		defer srv.Close()
		servers = append(servers, srv)
		t.Setenv(fmt.Sprintf("OPENEO_B%d_TOKEN", i), srv.ValidToken())
		run = append(run, "--backend", fmt.Sprintf("b%d=%s", i, srv.URL))
	}
	// b1 fails the creations of the first run: r0, given to b1, ends
	// start_failed; r1 finishes on b0.
	servers[1].SetFaults(remotetest.Faults{FailedCreates: 1})
	if code, out := cli(t, dir, run...); code != exitUnfinished {
		t.Fatalf("first run: exit %d, want %d\n%s", code, exitUnfinished, out)
	}
	rows := readRows(t, filepath.Join(dir, "jobs.db"))
	if rows[0].Status != driver.StartFailed || rows[0].Backend != "b1" || rows[0].PinnedBackend != "b1" {
		t.Fatalf("r0 after the first run: %s on %q pinned to %q", rows[0].Status, rows[0].Backend, rows[0].PinnedBackend)
	}
	if code, out := cli(t, dir, "retry", "--db", "jobs.db", "--status", "start_failed,finished"); code != 0 {
		t.Fatalf("retry: exit %d\n%s", code, out)
	}
	rows = readRows(t, filepath.Join(dir, "jobs.db"))
	if r := rows[0]; r.Status != driver.NotStarted || r.Backend != "b1" || r.PinnedBackend != "b1" {
		t.Errorf("r0 retried: %s on %q pinned to %q, want not_started on b1", r.Status, r.Backend, r.PinnedBackend)
	}
	if r := rows[1]; r.Status != driver.NotStarted || r.Backend != "" || r.PinnedBackend != "" {
		t.Errorf("r1 retried: %s on %q pinned to %q, want not_started for any back-end", r.Status, r.Backend, r.PinnedBackend)
	}
	b0Jobs := len(servers[0].Jobs())
	if code, out := cli(t, dir, run...); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	rows = readRows(t, filepath.Join(dir, "jobs.db"))
	if rows[0].Status != driver.Finished || rows[0].Backend != "b1" {
		t.Errorf("r0: %s on %q, want finished on b1", rows[0].Status, rows[0].Backend)
	}
	if n := len(servers[0].Jobs()) - b0Jobs; rows[1].Backend == "b0" && n != 1 || rows[1].Backend == "b1" && n != 0 {
		t.Errorf("b0 got %d jobs in the second run, r1 ran on %q: r0 went to b0", n, rows[1].Backend)
	}
}
