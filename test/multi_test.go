package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestTwoWorkersOneTable runs two worker processes on one table at once
// and checks every row ends with exactly one back-end job, one start and
// one download. Then again, killing one worker in the middle: the survivor
// takes over its rows.
//
// The back-end's clock stands still until both workers hold jobs, so that
// both take part however slowly the machine starts them: worker a may run
// 4 jobs at once, b 8, and both count every active row of the back-end.
// With the clock running, the kill comes once a random number of rows
// (seeded, printed) finished.
func TestTwoWorkersOneTable(t *testing.T) {
	t.Parallel()
	t.Run("both live", func(t *testing.T) { twoWorkers(t, false) })
	t.Run("one killed", func(t *testing.T) { twoWorkers(t, true) })
}

func twoWorkers(t *testing.T, kill bool) {
	const rows = 30
	clock := newThawClock()
	srv := remotetest.NewServer(remotetest.Options{Clock: clock, QueueTime: 20 * time.Millisecond, RunTime: 100 * time.Millisecond})
	defer srv.Close()
	dir := newTable(t, rows)
	env := []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"}
	start := func(parallel int) (*exec.Cmd, *bytes.Buffer, chan error) {
		var stderr bytes.Buffer
		c := cmd(t.Context(), dir, env, "run", "--db", "jobs.db", "--backend", fmt.Sprintf("fake=%s,parallel=%d", srv.URL, parallel),
			"--process", "p.json", "--root-dir", "res", "--poll", "30ms")
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		return c, &stderr, done
	}
	// jobs reports whether the back-end holds at least n jobs in status.
	jobs := func(status string, n int) func() bool {
		return func() bool {
			have := 0
			for _, j := range srv.Jobs() {
				if j.Status == status {
					have++
				}
			}
			return have >= n
		}
	}
	a, aErr, aDone := start(4)
	waitUntil(t, "worker a started 4 jobs", aDone, jobs("queued", 4))
	_, bErr, bDone := start(8)
	waitUntil(t, "worker b started 4 more", bDone, jobs("queued", 8))
	owners := map[string]int{}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status.Active() {
			owners[r.Worker]++
		}
	}
	if len(owners) != 2 {
		t.Fatalf("active rows by worker: %v, want rows of both", owners)
	}
	clock.Thaw()
	if kill {
		rng := testRand(t)
		n := 1 + rng.IntN(rows-8)
		waitUntil(t, fmt.Sprintf("%d jobs finished", n), aDone, jobs("finished", n))
		t.Logf("killing worker a once %d jobs finished", n)
		a.Process.Signal(syscall.SIGKILL)
		<-aDone
	} else if err := <-aDone; err != nil {
		t.Fatalf("worker a: %v\n%s", err, aErr)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("worker b: %v\n%s", err, bErr)
	}
	got := readRows(t, filepath.Join(dir, "jobs.db"))
	for _, r := range got {
		if r.Status != driver.Finished || r.DownloadPending {
			t.Errorf("row %v: %q pending=%v", r.Data["title"], r.Status, r.DownloadPending)
		}
		if _, err := os.Stat(filepath.Join(dir, "res", "job_"+r.ID, "result.tif")); err != nil {
			t.Errorf("row %v: %v", r.Data["title"], err)
		}
	}
	oneJobPerRow(t, srv, rows)
	if p := srv.PeakActive(); p > 8 {
		t.Errorf("%d jobs active on the back-end at once; b, whose parallel is 8, counts the jobs of a too", p)
	}
	req := srv.Requests()
	if req["POST /jobs/{job_id}/results"] != rows {
		t.Errorf("%d starts for %d rows", req["POST /jobs/{job_id}/results"], rows)
	}
	// Downloads the killed worker had begun (at most its 8 handlers) are
	// done again; between live workers, never.
	extra := 0
	if kill {
		extra = 8
	}
	if n := req["GET /assets/{job_id}/{name}"]; n < rows || n > rows+extra {
		t.Errorf("%d downloads for %d rows (kill %v): results downloaded twice", n, rows, kill)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "jobs.db.workers", "*.lock"))
	if len(left) > 1 {
		t.Errorf("lock files left: %v", left)
	}
}
