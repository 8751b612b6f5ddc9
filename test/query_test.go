package test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestQueryDuringRun reads a DuckDB and a Parquet table with query and
// status while a run holds it: neither waits for the run nor disturbs it.
func TestQueryDuringRun(t *testing.T) {
	for _, db := range []string{"jobs.duckdb", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) {
			srv := remotetest.NewServer(remotetest.Options{RunTime: 1500 * time.Millisecond})
			defer srv.Close()
			dir := newTableAt(t, 8, db)
			var stderr bytes.Buffer
			run := cmd(t.Context(), dir, []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"},
				"run", "--db", db, "--backend", "fake="+srv.URL+",parallel=8", "--process", "p.json", "--poll", "50ms", "--root-dir", "res")
			run.Stderr = &stderr
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			for len(srv.Jobs()) < 8 {
				time.Sleep(20 * time.Millisecond)
			}
			// A second run on the table is refused, clearly, and does no harm.
			second, err := cmd(t.Context(), dir, []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"},
				"run", "--db", db, "--backend", "fake="+srv.URL+",parallel=8", "--process", "p.json", "--poll", "50ms", "--root-dir", "res").CombinedOutput()
			if err == nil || !strings.Contains(string(second), "open for writing elsewhere") {
				t.Errorf("second run on %s: %v\n%.3000s", db, err, second)
			}
			for _, args := range [][]string{
				{"query", "--db", db, "select count(*) as n from jobs"},
				{"status", "--db", db},
			} {
				start := time.Now()
				out, err := cmd(t.Context(), dir, nil, args...).CombinedOutput()
				if err != nil || time.Since(start) > 10*time.Second {
					t.Errorf("%v during the run: %v after %v\n%s", args, err, time.Since(start), out)
				}
				if args[0] == "query" && !strings.Contains(string(out), "8") {
					t.Errorf("query during the run: %s", out)
				}
			}
			if err := run.Wait(); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			for _, r := range readRows(t, filepath.Join(dir, db)) {
				if r.Status != driver.Finished {
					t.Errorf("row %v: %q", r.Data["title"], r.Status)
				}
			}
			out, err := cmd(t.Context(), dir, nil, "query", "--db", db, "--format", "csv", "select status, count(*) as n from jobs group by all").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "finished,8") {
				t.Errorf("query after the run: %v\n%s", err, out)
			}
		})
	}
}
