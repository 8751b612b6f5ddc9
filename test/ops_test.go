package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// work runs the binary in dir and returns its stdout, stderr and exit code.
func work(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := cmd(t.Context(), dir, env, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	return stdout.String(), stderr.String(), exitCode(err)
}

// mustWork is work that fails the test unless the exit code is 0.
func mustWork(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := work(t, dir, env, args...)
	if code != 0 {
		t.Fatalf("worker %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

var fakeEnv = []string{"OPENEO_FAKE_USERNAME=user", "OPENEO_FAKE_PASSWORD=password"}

// rowByTitle returns the row titled title.
func rowByTitle(t *testing.T, rows []driver.Job, title string) driver.Job {
	t.Helper()
	for _, r := range rows {
		if r.Data["title"] == title {
			return r
		}
	}
	t.Fatalf("no row %q", title)
	return driver.Job{}
}

// failingServer is a fake back-end on which the job of "row 1" fails
// while fail is set.
func failingServer(t *testing.T, fail *atomic.Bool) *remotetest.Server {
	srv := remotetest.NewServer(remotetest.Options{
		QueueTime: 10 * time.Millisecond, RunTime: 20 * time.Millisecond,
		Outcome: func(j *remote.JobRequest) error {
			if j.Title == "row 1" && fail.Load() {
				return errors.New("out of memory in row 1")
			}
			return nil
		},
	})
	t.Cleanup(srv.Close)
	return srv
}

// TestRetryRunsAgainKeepingHistory runs a table in which one job fails,
// lists the failed row with jobs, checks that retry refuses while a run
// holds the table, retries it, and runs again: the row finishes with a new
// job and keeps its earlier job id; the other rows are not run again.
func TestRetryRunsAgainKeepingHistory(t *testing.T) {
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) { retryRunsAgain(t, db) })
	}
}

func retryRunsAgain(t *testing.T, db string) {
	var fail atomic.Bool
	fail.Store(true)
	srv := failingServer(t, &fail)
	dir := newTableAt(t, 3, db)
	runArgs := []string{"run", "--db", db, "--backend", "fake=" + srv.URL, "--process", "p.json", "--root-dir", "res", "--poll", "20ms"}
	// The run's exit status for failed rows is another change's business:
	// the table tells what happened.
	if _, errOut, code := work(t, dir, fakeEnv, runArgs...); code != 0 && code != 1 && code != 3 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	before := readRows(t, filepath.Join(dir, db))
	failed := rowByTitle(t, before, "row 1")
	if failed.Status != driver.Error || failed.ID == "" {
		t.Fatalf("row 1 after the first run: %q id %q, want error with a job", failed.Status, failed.ID)
	}

	// jobs shows it, and only it, among the failed rows; flags after the
	// command's other flags and a comma list of statuses.
	out := mustWork(t, dir, nil, "jobs", "--status", "error,start_failed", "--db", db, "--json", "--columns", "title,id,status")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("jobs --json: %v\n%s", err, out)
	}
	if len(listed) != 1 || listed[0]["title"] != "row 1" || listed[0]["id"] != failed.ID {
		t.Fatalf("jobs --status error: %v", listed)
	}

	// A run holds the table: retry refuses, says why, changes nothing.
	_, path, _ := driver.Lookup(filepath.Join(dir, db))
	owner, err := worker.NewLockOwner(path + ".workers")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := work(t, dir, nil, "retry", "--db", db)
	owner.Close()
	if code != 1 || !strings.Contains(errOut, "stop the run") || !strings.Contains(errOut, ".workers") {
		t.Errorf("retry during a run: exit %d, %q; want 1 and a message saying to stop the run", code, errOut)
	}
	if r := rowByTitle(t, readRows(t, filepath.Join(dir, db)), "row 1"); r.Status != driver.Error || r.ID != failed.ID {
		t.Fatalf("retry refused but row 1 changed: %q %q", r.Status, r.ID)
	}

	out = mustWork(t, dir, nil, "retry", "--db", db, "--json")
	var res struct {
		Retried []struct {
			Row         int64    `json:"row"`
			PreviousIDs []string `json:"previous_ids"`
			Retries     int      `json:"retries"`
		} `json:"retried"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Retried) != 1 ||
		!slices.Equal(res.Retried[0].PreviousIDs, []string{failed.ID}) || res.Retried[0].Retries != 1 {
		t.Fatalf("retry --json: %v %s", err, out)
	}
	r := rowByTitle(t, readRows(t, filepath.Join(dir, db)), "row 1")
	if r.Status != driver.NotStarted || r.ID != "" || r.Backend != "" || r.Attempts != 0 || r.LastError != "" || r.Tag != "" {
		t.Errorf("retried row not reset: %+v", r)
	}

	fail.Store(false)
	mustWork(t, dir, fakeEnv, runArgs...)
	after := readRows(t, filepath.Join(dir, db))
	r = rowByTitle(t, after, "row 1")
	if r.Status != driver.Finished || r.ID == "" || r.ID == failed.ID {
		t.Errorf("row 1 after retry and run: %q job %q (earlier job %q), want finished with a new job", r.Status, r.ID, failed.ID)
	}
	if got := r.Data["previous_ids"]; got != `["`+failed.ID+`"]` {
		t.Errorf("previous_ids = %#v, want the earlier job %s", got, failed.ID)
	}
	if got := r.Data["retries"]; got != int64(1) {
		t.Errorf("retries = %#v, want 1", got)
	}
	if _, err := os.Stat(worker.MetadataPath(filepath.Join(dir, "res"), r.ID)); err != nil {
		t.Errorf("results of the new job: %v", err)
	}
	for _, title := range []string{"row 0", "row 2"} {
		if a, b := rowByTitle(t, before, title), rowByTitle(t, after, title); a.ID != b.ID || b.Status != driver.Finished {
			t.Errorf("%s changed: %q %q -> %q %q", title, a.ID, a.Status, b.ID, b.Status)
		}
	}
	if n := len(srv.Jobs()); n != 4 {
		t.Errorf("%d back-end jobs, want 4 (3 rows, one run twice)", n)
	}
}

// TestRetryRefusesWhileTableIsWritten: another program holds a CSV
// table's writer lock; retry says so and changes nothing.
func TestRetryRefusesWhileTableIsWritten(t *testing.T) {
	dir := newTableAt(t, 2, "jobs.csv")
	s, err := driver.Open(t.Context(), filepath.Join(dir, "jobs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "jobs.csv"))
	_, errOut, code := work(t, dir, nil, "retry", "--db", "jobs.csv", "--status", "not_started")
	s.Close()
	if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "jobs.csv") {
		t.Errorf("exit %d, %q: want 1 and why", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "jobs.csv")); !bytes.Equal(before, after) {
		t.Errorf("table changed:\n%s\n->\n%s", before, after)
	}
}
