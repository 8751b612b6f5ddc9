package test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	_ "github.com/openeo-batch/worker/driver/postgres" // readRows opens postgres:// tables
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// pgCampaign is a run of several worker processes on one PostgreSQL
// table, each killed with SIGKILL kills times in all (at random, seeded)
// and started again, then run to their end.
type pgCampaign struct {
	rows, workers, kills, parallel int
	assets                         int
	opts                           remotetest.Options
	seed                           uint64
	// gap is the mean time between kills (default 500ms).
	gap time.Duration
}

// killEvery is a random wait before the next kill, from 0.1 to 1.9 gaps.
func (c pgCampaign) killEvery(rng *rand.Rand) time.Duration {
	gap := c.gap
	if gap == 0 {
		gap = 500 * time.Millisecond
	}
	return gap/10 + time.Duration(rng.Int64N(int64(gap)*18/10))
}

// run returns the table's location, the folder of the results and the
// fake back-end, once every worker ended by itself.
func (c pgCampaign) run(t *testing.T) (string, string, *remotetest.Server) {
	t.Helper()
	srv := remotetest.NewServer(c.opts)
	t.Cleanup(srv.Close)
	loc := pgtest.Location(t)
	dir := newTableAt(t, c.rows, loc)
	env := []string{"OPENEO_FAKE_USERNAME=user", "OPENEO_FAKE_PASSWORD=password"}
	args := []string{"run", "--db", loc, "--backend", fmt.Sprintf("fake=%s,parallel=%d", srv.URL, c.parallel),
		"--process", "p.json", "--root-dir", "res", "--poll", "100ms"}
	rng := rand.New(rand.NewPCG(c.seed, c.seed))
	type proc struct {
		c      *exec.Cmd
		stderr *bytes.Buffer
		done   chan error
	}
	start := func() *proc {
		var stderr bytes.Buffer
		cm := cmd(t.Context(), dir, env, args...)
		cm.Stderr = &stderr
		if err := cm.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{c: cm, stderr: &stderr, done: make(chan error, 1)}
		go func() { p.done <- cm.Wait() }()
		return p
	}
	procs := make([]*proc, c.workers)
	for i := range procs {
		procs[i] = start()
	}
	for killed := 0; killed < c.kills; {
		i := rng.IntN(len(procs))
		select {
		case err := <-procs[i].done:
			// It ended by itself: the table is done, or it failed.
			if !finished(err) {
				t.Fatalf("worker %d: %v\n%s", i, err, procs[i].stderr)
			}
			procs[i] = start()
			continue
		case <-time.After(c.killEvery(rng)):
		}
		procs[i].c.Process.Signal(syscall.SIGKILL)
		<-procs[i].done
		killed++
		procs[i] = start()
	}
	for i, p := range procs {
		if err := <-p.done; !finished(err) {
			t.Errorf("worker %d: %v\n%s", i, err, p.stderr)
		}
	}
	return loc, dir, srv
}

// finished reports whether a worker ended with the table done: exit 0,
// or 3 when rows ended in error (the jobs the back-end fails), which
// check looks at row by row.
func finished(err error) bool { return err == nil || exitCode(err) == 3 }

// check asserts what every campaign ends with: each row finished (or in
// error, for the jobs the back-end fails) with exactly one back-end job,
// its results on disk whole and once, and the back-end never holding more
// active jobs than parallel.
func (c pgCampaign) check(t *testing.T, loc, dir string, srv *remotetest.Server, assetSize int) {
	t.Helper()
	oneJobPerRow(t, srv, c.rows)
	if p := srv.PeakActive(); p > c.parallel {
		t.Errorf("%d jobs active on the back-end at once, parallel_jobs is %d", p, c.parallel)
	}
	res := filepath.Join(dir, "res")
	got := readRows(t, loc)
	if len(got) != c.rows {
		t.Fatalf("%d rows, want %d", len(got), c.rows)
	}
	ids := map[string]bool{}
	for _, r := range got {
		title, _ := r.Data["title"].(string)
		want := driver.Finished
		if c.opts.Outcome != nil && failing(title) {
			want = driver.Error
		}
		if r.Status != want || r.DownloadPending {
			t.Errorf("row %q: status %q, download pending %v, last_error %q; want %q", title, r.Status, r.DownloadPending, r.LastError, want)
			continue
		}
		ids[r.ID] = true
		if want == driver.Error {
			if _, err := os.Stat(worker.ErrorLogPath(res, r.ID)); err != nil {
				t.Errorf("row %q: error log: %v", title, err)
			}
			continue
		}
		for i := range c.assets {
			name := "result.tif"
			if c.assets > 1 {
				name = fmt.Sprintf("result-%d.tif", i)
			}
			b, err := os.ReadFile(filepath.Join(worker.JobDir(res, r.ID), name))
			if err != nil || !bytes.Equal(b, remotetest.AssetBytes(r.ID, name, assetSize)) {
				t.Errorf("row %q: asset %s incomplete or wrong (%d bytes, %v)", title, name, len(b), err)
			}
		}
	}
	// Once on disk: one job folder per row, none left over.
	entries, _ := os.ReadDir(res)
	if len(entries) != len(ids) {
		t.Errorf("%d job folders for %d rows", len(entries), len(ids))
	}
	var parts []string
	filepath.WalkDir(res, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".part") {
			parts = append(parts, path)
		}
		return nil
	})
	if len(parts) > 0 {
		t.Errorf("%d .part files left, e.g. %s", len(parts), parts[0])
	}
}

// TestPostgresWorkers runs three worker processes on one PostgreSQL
// table, as three machines would, one of them killed once: every row ends
// with one back-end job and its results, and the cap holds across them.
func TestPostgresWorkers(t *testing.T) {
	t.Parallel()
	c := pgCampaign{rows: 24, workers: 3, kills: 1, parallel: 5, assets: 1,
		opts: remotetest.Options{QueueTime: 20 * time.Millisecond, RunTime: 50 * time.Millisecond}, seed: 1}
	loc, dir, srv := c.run(t)
	c.check(t, loc, dir, srv, 1024)
	// status and export read it like any table.
	out := mustWork(t, dir, nil, "status", "--db", loc)
	if !strings.Contains(out, "finished") || !strings.Contains(out, "24") {
		t.Errorf("status:\n%s", out)
	}
	out = mustWork(t, dir, nil, "query", "--db", loc, "--format", "csv", "select count(*) from jobs where status = 'finished' and not download_pending")
	if strings.TrimSpace(out) != "count\n24" {
		t.Errorf("query: %q", out)
	}
	if _, stderr, code := work(t, dir, nil, "query", "--db", loc, "delete from jobs"); code == 0 || !strings.Contains(stderr, "read-only") {
		t.Errorf("query that writes: exit %d, %s", code, stderr)
	}
	mustWork(t, dir, nil, "export", "--db", loc, "--to", "out.csv")
	b, err := os.ReadFile(filepath.Join(dir, "out.csv"))
	if err != nil || strings.Count(string(b), "\n") != 25 {
		t.Errorf("export: %d lines, %v", strings.Count(string(b), "\n"), err)
	}
}

// TestPostgresKillCampaign is issue 14's acceptance campaign: 3 workers
// on one table, 20 random SIGKILLs among them (each restarted), 1,000
// jobs on a back-end with faults: exactly one back-end job per row, every
// result on disk once, parallel_jobs never exceeded at the back-end.
//
//	WORKER_PG_KILL_CAMPAIGN=1 go test -run TestPostgresKillCampaign -v ./test/
func TestPostgresKillCampaign(t *testing.T) {
	if os.Getenv("WORKER_PG_KILL_CAMPAIGN") == "" {
		t.Skip("set WORKER_PG_KILL_CAMPAIGN=1 (and " + pgtest.Env + ") to run the PostgreSQL kill campaign")
	}
	rows := envInt(t, "WORKER_KILL_ROWS", 1000)
	kills := envInt(t, "WORKER_KILL_KILLS", 20)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const assetSize = 64 << 10
	c := pgCampaign{rows: rows, workers: 3, kills: kills, parallel: 40, assets: 2, seed: seed, gap: 2 * time.Second,
		opts: remotetest.Options{QueueTime: 50 * time.Millisecond, RunTime: 200 * time.Millisecond, AssetSize: assetSize, Assets: 2,
			Outcome: func(j *remote.JobRequest) error {
				if failing(j.Title) {
					return errors.New("campaign: this job fails")
				}
				return nil
			},
			Faults: remotetest.Faults{Seed: seed, ErrorRate: 0.02, DropRate: 0.02}}}
	start := time.Now()
	loc, dir, srv := c.run(t)
	c.check(t, loc, dir, srv, assetSize)
	t.Logf("%d rows, 3 workers, %d kills: %s; peak active %d (parallel 40); faults %v; requests %d",
		rows, kills, time.Since(start).Round(time.Second), srv.PeakActive(), srv.Injected(), srv.TotalRequests())
}
