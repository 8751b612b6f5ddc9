// Package test holds end-to-end tests of the built worker binary.
package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	_ "github.com/openeo-batch/worker/driver/csvfile"
	_ "github.com/openeo-batch/worker/driver/duckdb"
	_ "github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-race", "-o", workerBin, "../cmd/worker")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build worker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cmd returns a worker command with a clean environment plus env.
func cmd(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, workerBin, args...)
	c.Dir = dir
	c.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	return c
}

func readRows(t *testing.T, path string) []driver.Job {
	t.Helper()
	s, err := driver.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.Select(t.Context(), driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	c := cmd(t.Context(), dir, nil, "demo", "--dir", "out")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	rows := readRows(t, filepath.Join(dir, "out", "jobs.db"))
	if len(rows) != 12 {
		t.Fatalf("%d rows, want 12", len(rows))
	}
	for _, r := range rows {
		want := driver.Finished
		if r.Data["tile"] == "31UGV" {
			want = driver.Error
		}
		if r.Status != want {
			t.Errorf("row %v: %q, want %q", r.Data["title"], r.Status, want)
			continue
		}
		path := worker.MetadataPath(filepath.Join(dir, "out", "results"), r.ID)
		if want == driver.Error {
			path = worker.ErrorLogPath(filepath.Join(dir, "out", "results"), r.ID)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("row %v: %v", r.Data["title"], err)
		}
	}
	for _, want := range []string{"finished", "Results:", "worker status --db"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	// Off a terminal the demo's progress is a "progress" log line per poll.
	if !strings.Contains(stderr.String(), "msg=progress done=12 total=12") {
		t.Errorf("no final progress line:\n%s", stderr.String())
	}

	// status reads the table the demo left.
	stdout.Reset()
	c = cmd(t.Context(), dir, nil, "status", "--db", "out/jobs.db")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil || !strings.Contains(stdout.String(), "finished") {
		t.Errorf("status: %v\n%s", err, stdout.String())
	}
}

const process = `{
  "id": "double",
  "parameters": [{"name": "year", "description": "a year", "schema": {"type": "integer"}}],
  "process_graph": {"m": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "year"}, "y": 2}, "result": true}}
}`

// TestKillAndResume kills the worker with SIGKILL at random moments of a
// run, resumes it each time, and checks that every row ends finished with
// exactly one back-end job and its results on disk.
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) { killAndResume(t, db) })
	}
}

func killAndResume(t *testing.T, db string) {
	const rows = 24
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 20 * time.Millisecond, RunTime: 80 * time.Millisecond})
	defer srv.Close()
	dir := newTableAt(t, rows, db)
	env := []string{"OPENEO_FAKE_USERNAME=user", "OPENEO_FAKE_PASSWORD=password"}
	args := []string{"run", "--db", db, "--backend", "fake=" + srv.URL + ",parallel=6",
		"--process", "p.json", "--root-dir", "res", "--poll", "30ms"}

	// Kill runs at random points until one finishes by itself or six were
	// killed; then run to the end. A point is a number of requests the
	// back-end receives from the run, not a time: a loaded machine slows
	// the run and the kill alike.
	rng := testRand(t)
	kills := 0
	finished := false
	var logs strings.Builder
	var points []int
	for !finished && kills < 6 {
		var stderr bytes.Buffer
		c := cmd(t.Context(), dir, env, args...)
		c.Stderr = &stderr
		n := 1 + rng.IntN(80)
		from := srv.TotalRequests()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		if !requestsOrExit(srv, from+n, done) {
			err := <-done
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			logs.Write(stderr.Bytes())
			finished = true
			continue
		}
		c.Process.Signal(syscall.SIGKILL)
		<-done
		kills++
		points = append(points, n)
		logs.Write(stderr.Bytes())
	}
	if !finished {
		out, err := cmd(t.Context(), dir, env, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("final run: %v\n%s", err, out)
		}
		logs.Write(out)
	}
	starts := srv.Requests()["POST /jobs/{job_id}/results"]
	if starts != rows {
		t.Errorf("%d start requests for %d jobs: a job was started twice (a restart discards results) or never", starts, rows)
	}
	t.Logf("killed the worker %d times, after %v requests; jobs adopted after a kill: %d; start requests: %d",
		kills, points, strings.Count(logs.String(), "adopting job"), starts)

	oneJobPerRow(t, srv, rows)
	got := readRows(t, filepath.Join(dir, db))
	if len(got) != rows {
		t.Errorf("%d rows, want %d", len(got), rows)
	}
	for _, r := range got {
		if r.Status != driver.Finished || r.DownloadPending {
			t.Errorf("row %v: status %q, pending %v", r.Data["title"], r.Status, r.DownloadPending)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "res", "job_"+r.ID, "result.tif")); err != nil {
			t.Errorf("row %v: result not on disk: %v", r.Data["title"], err)
		}
		if _, err := os.Stat(worker.MetadataPath(filepath.Join(dir, "res"), r.ID)); err != nil {
			t.Errorf("row %v: metadata not on disk: %v", r.Data["title"], err)
		}
	}
	// A download killed midway resumes from its .part; none outlives the run.
	parts, _ := filepath.Glob(filepath.Join(dir, "res", "job_*", "*.part*"))
	if len(parts) > 0 {
		t.Errorf("partial downloads left after the run: %v", parts)
	}
}

// requestsOrExit waits until srv has received n requests in all, and
// reports true, or until the process whose end done tells exits first, and
// reports false (leaving its result in done).
func requestsOrExit(srv *remotetest.Server, n int, done chan error) bool {
	for srv.TotalRequests() < n {
		select {
		case err := <-done:
			done <- err
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}

// newTable makes a folder with a table of rows rows (year, title "row N"),
// initialized by the binary, and the process definition p.json.
func newTable(t *testing.T, rows int) string {
	t.Helper()
	return newTableAt(t, rows, "jobs.db")
}

// newTableAt is newTable with the table at db (its ending picks the store).
func newTableAt(t *testing.T, rows int, db string) string {
	t.Helper()
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("year,title\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%d,row %d\n", 2000+i, i)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(csv.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(process), 0o644)
	if out, err := cmd(t.Context(), dir, nil, "init", "--from", "in.csv", "--db", db).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	return dir
}

// oneJobPerRow checks the back-end holds exactly one job for each of the
// rows (titled "row N").
func oneJobPerRow(t *testing.T, srv *remotetest.Server, rows int) {
	t.Helper()
	perTitle := map[string]int{}
	for _, j := range srv.Jobs() {
		perTitle[j.Title]++
	}
	for title, n := range perTitle {
		if n != 1 {
			t.Errorf("%d back-end jobs for %q, want exactly 1", n, title)
		}
	}
	if len(perTitle) != rows {
		t.Errorf("back-end jobs for %d rows, want %d", len(perTitle), rows)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("year,status\n2020,not_started\n2021,bogus\n"), 0o644)
	out, err := cmd(t.Context(), dir, nil, "init", "--from", "bad.csv", "--db", "jobs.db").CombinedOutput()
	if code := exitCode(err); code != 2 {
		t.Errorf("exit %d, want 2 (invalid input)", code)
	}
	for _, want := range []string{"bad.csv", "row 2", "status", "bogus"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message %q lacks %q", out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jobs.db")); !os.IsNotExist(err) {
		t.Errorf("jobs.db left behind: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "ragged.csv"), []byte("a,b\n1,2\n3\n"), 0o644)
	out, _ = cmd(t.Context(), dir, nil, "init", "--from", "ragged.csv", "--db", "j2.db").CombinedOutput()
	if !strings.Contains(string(out), "ragged.csv") || !strings.Contains(string(out), "line 3") {
		t.Errorf("ragged CSV message: %s", out)
	}

	out, err = cmd(t.Context(), dir, nil, "run", "--db", "missing.db", "--backend", "x=http://127.0.0.1:1", "--process", "p.json").CombinedOutput()
	// The missing --process file is invalid input, met first: exit 2.
	if exitCode(err) != 2 || !strings.Contains(string(out), "no such file") && !strings.Contains(string(out), "p.json") {
		t.Errorf("run with missing files: %v %s", err, out)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"", "init", "run", "status", "demo"} {
		args := []string{"--help"}
		if sub != "" {
			args = []string{sub, "--help"}
		}
		out, err := cmd(t.Context(), t.TempDir(), nil, args...).CombinedOutput()
		if err != nil {
			t.Errorf("worker %s --help: %v", sub, err)
		}
		if !strings.Contains(string(out), "Example") {
			t.Errorf("worker %s --help has no example:\n%s", sub, out)
		}
	}
	_, err := cmd(t.Context(), t.TempDir(), nil, "run", "--nope").CombinedOutput()
	if exitCode(err) != 2 {
		t.Errorf("unknown flag: exit %d, want 2", exitCode(err))
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
