package test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestQueryDuringRun reads a DuckDB and a Parquet table with query and
// status while a run holds it: neither waits for the run nor disturbs it.
// The back-end's clock stands still until they returned, so the run
// cannot end before them, however slow the machine.
func TestQueryDuringRun(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"jobs.duckdb", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) {
			clock := newThawClock()
			srv := remotetest.NewServer(remotetest.Options{Clock: clock, RunTime: 100 * time.Millisecond})
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
			if err == nil || !strings.Contains(string(second), "allows one run at a time") {
				t.Errorf("second run on %s: %v\n%.3000s", db, err, second)
			}
			for _, args := range [][]string{
				{"query", "--db", db, "select count(*) as n from jobs"},
				{"status", "--db", db},
			} {
				// The run cannot end while the clock stands still: a
				// reader that waited for it would never return. The
				// deadline only turns that hang into a failure.
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				out, err := cmd(ctx, dir, nil, args...).CombinedOutput()
				cancel()
				if err != nil {
					t.Errorf("%v during the run: %v\n%s", args, err, out)
				}
				if args[0] == "query" && !strings.Contains(string(out), "8") {
					t.Errorf("query during the run: %s", out)
				}
			}
			clock.Thaw()
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
