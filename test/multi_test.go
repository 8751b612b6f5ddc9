package test

import (
	"bytes"
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
func TestTwoWorkersOneTable(t *testing.T) {
	t.Run("both live", func(t *testing.T) { twoWorkers(t, false) })
	t.Run("one killed", func(t *testing.T) { twoWorkers(t, true) })
}

func twoWorkers(t *testing.T, kill bool) {
	const rows = 30
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 20 * time.Millisecond, RunTime: 100 * time.Millisecond})
	defer srv.Close()
	dir := newTable(t, rows)
	env := []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"}
	args := []string{"run", "--db", "jobs.db", "--backend", "fake=" + srv.URL + ",parallel=8",
		"--process", "p.json", "--root-dir", "res", "--poll", "30ms"}
	start := func() (*exec.Cmd, *bytes.Buffer) {
		var stderr bytes.Buffer
		c := cmd(t.Context(), dir, env, args...)
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c, &stderr
	}
	a, aErr := start()
	b, bErr := start()
	if kill {
		time.Sleep(400 * time.Millisecond)
		a.Process.Signal(syscall.SIGKILL)
		a.Wait()
	} else if err := a.Wait(); err != nil {
		t.Fatalf("worker a: %v\n%s", err, aErr)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("worker b: %v\n%s", err, bErr)
	}

	got := readRows(t, filepath.Join(dir, "jobs.db"))
	owners := map[string]int{}
	for _, r := range got {
		owners[r.Worker]++
		if r.Status != driver.Finished || r.DownloadPending {
			t.Errorf("row %v: %q pending=%v", r.Data["title"], r.Status, r.DownloadPending)
		}
		if _, err := os.Stat(filepath.Join(dir, "res", "job_"+r.ID, "result.tif")); err != nil {
			t.Errorf("row %v: %v", r.Data["title"], err)
		}
	}
	if !kill && len(owners) < 2 {
		t.Errorf("rows by worker: %v: one worker did everything, the test shows no sharing", owners)
	}
	oneJobPerRow(t, srv, rows)
	if p := srv.PeakActive(); p > 8 {
		t.Errorf("%d jobs active on the back-end at once, parallel is 8 for both workers together", p)
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
