package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	t.Parallel()
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
	t.Parallel()
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

// waitFor polls cond until it holds, or fails the test after a minute.
// It asserts nothing about time: a slow machine only waits longer.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 6000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// TestCancelDuringRun cancels the running jobs of a table while a run
// holds it: the back-end's jobs end canceled, the rows record it, and the
// run ends.
func TestCancelDuringRun(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 10 * time.Millisecond, RunTime: time.Hour})
	defer srv.Close()
	dir := newTable(t, 3)
	run := cmd(t.Context(), dir, fakeEnv, "run", "--db", "jobs.db", "--backend", "fake="+srv.URL+",parallel=2",
		"--process", "p.json", "--root-dir", "res", "--poll", "20ms")
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	running := func() []string {
		var ids []string
		for _, j := range srv.Jobs() {
			if j.Status == "running" {
				ids = append(ids, j.ID)
			}
		}
		return ids
	}
	waitFor(t, "two running jobs", func() bool { return len(running()) == 2 })
	waitFor(t, "the run to record them", func() bool {
		n := 0
		for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
			if r.Status == driver.Running {
				n++
			}
		}
		return n == 2
	})

	// Rows 1 and 2 are running; row 3 waits. Cancel row 1 by number.
	out := mustWork(t, dir, fakeEnv, "cancel", "1", "--db", "jobs.db", "--backend", "fake="+srv.URL, "--json")
	var res struct {
		Canceled []struct {
			Row      int64  `json:"row"`
			ID       string `json:"id"`
			Recorded bool   `json:"recorded"`
		} `json:"canceled"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Canceled) != 1 || res.Canceled[0].Row != 1 || !res.Canceled[0].Recorded {
		t.Fatalf("cancel 1 --json: %v %s", err, out)
	}
	// Then every other active row, row 3 included once it runs.
	for {
		rows := readRows(t, filepath.Join(dir, "jobs.db"))
		active := 0
		for _, r := range rows {
			if r.Status.Active() || r.Status == driver.NotStarted {
				active++
			}
		}
		if active == 0 {
			break
		}
		mustWork(t, dir, fakeEnv, "cancel", "--db", "jobs.db", "--backend", "fake="+srv.URL)
		time.Sleep(20 * time.Millisecond)
	}
	if err := run.Wait(); err != nil && exitCode(err) == 2 {
		t.Errorf("run: %v\n%s", err, runErr.String())
	}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Canceled {
			t.Errorf("row %d: %q, want canceled", r.Key, r.Status)
		}
	}
	for _, j := range srv.Jobs() {
		if j.Status == "running" || j.Status == "queued" {
			t.Errorf("back-end job %s still %s", j.ID, j.Status)
		}
	}
	if n := srv.Requests()["DELETE /jobs/{job_id}/results"]; n < 3 {
		t.Errorf("%d cancel requests, want one per job (3)", n)
	}
}

// TestLogsAndDownload reads a failed job's logs by row and by job id (with
// a --backend URL named after its host), then fetches the results that a
// run left undownloaded, and again after one file was cut short.
func TestLogsAndDownload(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	srv := failingServer(t, &fail)
	dir := newTable(t, 3)
	backend := "fake=" + srv.URL
	if _, errOut, code := work(t, dir, fakeEnv, "run", "--db", "jobs.db", "--backend", backend, "--process", "p.json",
		"--root-dir", "res", "--poll", "20ms", "--no-download"); code == 2 {
		t.Fatalf("run: %s", errOut)
	}
	rows := readRows(t, filepath.Join(dir, "jobs.db"))
	failed := rowByTitle(t, rows, "row 1")

	out := mustWork(t, dir, fakeEnv, "logs", strconvI(failed.Key), "--db", "jobs.db", "--backend", backend, "--level", "error")
	if !strings.Contains(out, "out of memory in row 1") || strings.Contains(out, "job created") {
		t.Errorf("logs --level error of row %d:\n%s", failed.Key, out)
	}
	out = mustWork(t, dir, []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"}, "logs", failed.ID, "--backend", srv.URL, "--json")
	var entries []remote.LogEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 2 || entries[1].Code != "JobFailed" {
		t.Errorf("logs %s --json: %v\n%s", failed.ID, err, out)
	}

	// --no-download left every result missing.
	out = mustWork(t, dir, fakeEnv, "download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res", "--dry-run", "--json")
	var res struct {
		Rows []struct {
			Row     int64    `json:"row"`
			ID      string   `json:"id"`
			Missing []string `json:"missing"`
			Done    bool     `json:"downloaded"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Rows) != 2 {
		t.Fatalf("download --dry-run: %v\n%s", err, out)
	}
	for _, r := range res.Rows {
		want := []string{"result.tif", "job_" + r.ID + ".json", worker.ResultsFile}
		if !slices.Equal(r.Missing, want) || r.Done {
			t.Errorf("dry run, row %d: missing %v downloaded %v; want %v (the result and both metadata files), nothing done", r.Row, r.Missing, r.Done, want)
		}
		if _, err := os.Stat(worker.JobDir(filepath.Join(dir, "res"), r.ID)); !os.IsNotExist(err) {
			t.Errorf("dry run wrote the folder of job %s", r.ID)
		}
	}
	mustWork(t, dir, fakeEnv, "download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res")
	var ids []string
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Finished {
			continue
		}
		ids = append(ids, r.ID)
		if r.DownloadPending {
			t.Errorf("row %d: download_pending still set", r.Key)
		}
		for _, f := range []string{"result.tif", "job_" + r.ID + ".json", worker.ResultsFile} {
			if _, err := os.Stat(filepath.Join(worker.JobDir(filepath.Join(dir, "res"), r.ID), f)); err != nil {
				t.Errorf("row %d: %v", r.Key, err)
			}
		}
	}

	// With every result there, --json says so with an empty list, not null.
	out = mustWork(t, dir, fakeEnv, "download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res", "--dry-run", "--json")
	var raw struct {
		Rows []map[string]json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw.Rows) != 2 {
		t.Fatalf("download --json with nothing missing: %v\n%s", err, out)
	}
	for _, r := range raw.Rows {
		if string(r["missing"]) != "[]" {
			t.Errorf("download --json with nothing missing: \"missing\": %s, want []\n%s", r["missing"], out)
		}
	}

	// A file cut short is found and fetched again; complete ones are not.
	cut := filepath.Join(worker.JobDir(filepath.Join(dir, "res"), ids[0]), "result.tif")
	os.Truncate(cut, 10)
	before := srv.Requests()["GET /assets/{job_id}/{name}"]
	out = mustWork(t, dir, fakeEnv, "download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res")
	if !strings.Contains(out, "10 of 1024 bytes") || !strings.Contains(out, "1 downloaded") {
		t.Errorf("download after a cut file:\n%s", out)
	}
	if fi, err := os.Stat(cut); err != nil || fi.Size() != 1024 {
		t.Errorf("%s after download: %v %v", cut, fi, err)
	}
	if n := srv.Requests()["GET /assets/{job_id}/{name}"] - before; n != 1 {
		t.Errorf("%d asset downloads, want 1 (only the cut file's job)", n)
	}
}

func strconvI(k int64) string { return strconv.FormatInt(k, 10) }

// TestVersionAndFlagOrder: version prints the build's versions, and flags
// are accepted after positional arguments.
func TestVersionAndFlagOrder(t *testing.T) {
	t.Parallel()
	dir := newTable(t, 3)
	out := mustWork(t, dir, nil, "version", "--json")
	var v struct {
		Go   string            `json:"go"`
		Deps map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || !strings.HasPrefix(v.Go, "go1.") ||
		!strings.HasPrefix(v.Deps["modernc.org/sqlite"], "v1.") || !strings.HasPrefix(v.Deps["github.com/duckdb/duckdb-go/v2"], "v2.") {
		t.Errorf("version --json: %v\n%s", err, out)
	}
	if out := mustWork(t, dir, nil, "version"); !strings.Contains(out, "commit") || !strings.Contains(out, "modernc.org/sqlite") {
		t.Errorf("version:\n%s", out)
	}

	out = mustWork(t, dir, nil, "query", "select count(*) as n from jobs where year > 2000", "--db", "jobs.db", "--format", "csv")
	if out != "n\n2\n" {
		t.Errorf("query with flags after the SQL: %q", out)
	}
	out = mustWork(t, dir, nil, "jobs", "--where", "year >= 2001 and title <> 'row 2'", "--db", "jobs.db", "--columns", "title")
	if !strings.Contains(out, "row 1") || strings.Contains(out, "row 2") || strings.Contains(out, "row 0") {
		t.Errorf("jobs --where:\n%s", out)
	}
	if _, errOut, code := work(t, dir, nil, "jobs", "--db", "jobs.db", "--where", "nope > 1"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Errorf("jobs --where with a bad column: exit %d %s", code, errOut)
	}
}

// TestInitAppend grows a table with the rows of a new input, refusing an
// input with a key already there and leaving the table untouched then.
func TestInitAppend(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) {
			dir := newTableAt(t, 3, db) // years 2000-2002
			os.WriteFile(filepath.Join(dir, "dup.csv"), []byte("year,title\n2003,row 3\n2001,again\n"), 0o644)
			before, _ := os.ReadFile(filepath.Join(dir, db))
			_, errOut, code := work(t, dir, nil, "init", "--append", "--from", "dup.csv", "--db", db, "--key", "year")
			if code != 2 || !strings.Contains(errOut, "dup.csv") || !strings.Contains(errOut, "row 2 (year=2001)") || !strings.Contains(errOut, "nothing was added") {
				t.Errorf("append with a duplicate key: exit %d %q", code, errOut)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, db)); !bytes.Equal(before, after) {
				t.Errorf("refused append changed %s", db)
			}
			if _, errOut, code := work(t, dir, nil, "init", "--append", "--from", "dup.csv", "--db", db); code != 2 || !strings.Contains(errOut, "--key") {
				t.Errorf("append without --key: exit %d %q", code, errOut)
			}

			os.WriteFile(filepath.Join(dir, "more.csv"), []byte("year,title,cloud\n2003,row 3,0.5\n2004,row 4,\n"), 0o644)
			out := mustWork(t, dir, nil, "init", "--append", "--from", "more.csv", "--db", db, "--key", "year")
			if !strings.Contains(out, "added 2 rows") || !strings.Contains(out, "cloud") {
				t.Errorf("append: %s", out)
			}
			rows := readRows(t, filepath.Join(dir, db))
			if len(rows) != 5 {
				t.Fatalf("%d rows after append, want 5", len(rows))
			}
			for i, r := range rows {
				if r.Data["year"] != int64(2000+i) || r.Status != driver.NotStarted {
					t.Errorf("row %d: year %#v status %q", i, r.Data["year"], r.Status)
				}
			}
			if rows[3].Data["cloud"] != 0.5 || rows[0].Data["cloud"] != nil {
				t.Errorf("new column cloud: %#v %#v", rows[3].Data["cloud"], rows[0].Data["cloud"])
			}
		})
	}
}

// TestOpsHelp: each new command explains itself with an example.
func TestOpsHelp(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"jobs", "retry", "cancel", "logs", "download", "version", "init"} {
		out, errOut, code := work(t, t.TempDir(), nil, sub, "--help")
		if code != 0 || !strings.Contains(out+errOut, "Example") || !strings.Contains(out+errOut, "worker "+sub) {
			t.Errorf("worker %s --help: exit %d\n%s%s", sub, code, out, errOut)
		}
	}
	if out, errOut, _ := work(t, t.TempDir(), nil, "init", "--help"); !strings.Contains(out+errOut, "--append") {
		t.Errorf("init --help does not explain --append")
	}
}
