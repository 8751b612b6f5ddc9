package test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// TestKillCampaign is issue 11's acceptance campaign: a run of many jobs
// on a back-end that injects faults (5xx answers, lost creations, cut
// downloads, 10% of jobs failing), killed with SIGKILL at random instants
// many times, then run to its end, for SQLite, CSV and Parquet tables. It
// checks that no job was created twice, every row ended with its results
// (or error log) complete on disk, and no .part file is left.
//
// It takes minutes, so it runs only when asked (make kill-campaign):
//
//	WORKER_KILL_CAMPAIGN=1 go test -run TestKillCampaign -v ./test/
//
// WORKER_KILL_ROWS and WORKER_KILL_KILLS set its size (default 500 rows,
// 30 kills); WORKER_KILL_SEED replays a campaign (the seed is logged).
func TestKillCampaign(t *testing.T) {
	if os.Getenv("WORKER_KILL_CAMPAIGN") == "" {
		t.Skip("set WORKER_KILL_CAMPAIGN=1 (or run make kill-campaign) to run the kill campaign")
	}
	rows := envInt(t, "WORKER_KILL_ROWS", 500)
	kills := envInt(t, "WORKER_KILL_KILLS", 30)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WORKER_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WORKER_KILL_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with WORKER_KILL_SEED=%d)", seed, seed)
	for i, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet"} {
		t.Run(db, func(t *testing.T) { killCampaign(t, db, rows, kills, seed+uint64(i)) })
	}
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// failing reports whether the campaign's back-end fails the job titled
// title (about one in ten, the same on every run).
func failing(title string) bool {
	h := fnv.New32a()
	h.Write([]byte(title))
	return h.Sum32()%10 == 0
}

func killCampaign(t *testing.T, db string, rows, kills int, seed uint64) {
	const assetSize = 256 << 10
	srv := remotetest.NewServer(remotetest.Options{
		QueueTime: 50 * time.Millisecond, RunTime: 200 * time.Millisecond,
		MaxRunning: 40, AssetSize: assetSize, Assets: 2,
		Outcome: func(j *remote.JobRequest) error {
			if failing(j.Title) {
				return errors.New("campaign: this job fails")
			}
			return nil
		},
		Faults: remotetest.Faults{Seed: seed, ErrorRate: 0.05, DropRate: 0.05},
	})
	defer srv.Close()
	dir := newTableAt(t, rows, db)
	env := []string{"OPENEO_FAKE_USERNAME=user", "OPENEO_FAKE_PASSWORD=password"}
	args := []string{"run", "--db", db, "--backend", "fake=" + srv.URL + ",parallel=40,queue=40",
		"--process", "p.json", "--root-dir", "res", "--poll", "200ms"}
	rng := rand.New(rand.NewPCG(seed, seed))

	killed := 0
	var last bytes.Buffer
	for ended := false; !ended && killed < kills; {
		last.Reset()
		c := cmd(t.Context(), dir, env, args...)
		c.Stderr = &last
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		wait := time.Duration(100+rng.IntN(1900)) * time.Millisecond
		select {
		case err := <-done:
			t.Logf("run ended by itself after %d kills: %v", killed, err)
			ended = true
		case <-time.After(wait):
			c.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
	}
	// Run to the end; a run that ends with rows in error exits non-zero,
	// which is not a failure here: the rows are checked below.
	last.Reset()
	final := cmd(t.Context(), dir, env, args...)
	final.Stderr = &last
	runErr := final.Run()
	t.Logf("final run: %v; faults injected: %v", runErr, srv.Injected())

	perTitle := map[string]int{}
	for _, j := range srv.Jobs() {
		perTitle[j.Title]++
	}
	dups := 0
	for title, n := range perTitle {
		if n > 1 {
			dups++
			t.Errorf("%d back-end jobs for %q, want 1", n, title)
		}
	}
	res := filepath.Join(dir, "res")
	got := readRows(t, filepath.Join(dir, db))
	if len(got) != rows {
		t.Errorf("%d rows, want %d", len(got), rows)
	}
	incomplete := 0
	for _, r := range got {
		title, _ := r.Data["title"].(string)
		want := driver.Finished
		if failing(title) {
			want = driver.Error
		}
		if r.Status != want || r.DownloadPending {
			incomplete++
			t.Errorf("row %q: status %q, download pending %v, last_error %q; want %q", title, r.Status, r.DownloadPending, r.LastError, want)
			continue
		}
		if want == driver.Error {
			if _, err := os.Stat(worker.ErrorLogPath(res, r.ID)); err != nil {
				incomplete++
				t.Errorf("row %q: error log: %v", title, err)
			}
			continue
		}
		for _, name := range []string{"result-0.tif", "result-1.tif"} {
			b, err := os.ReadFile(filepath.Join(worker.JobDir(res, r.ID), name))
			if err != nil || !bytes.Equal(b, remotetest.AssetBytes(r.ID, name, assetSize)) {
				incomplete++
				t.Errorf("row %q: asset %s incomplete or wrong (%d bytes, %v)", title, name, len(b), err)
			}
		}
		if _, err := os.Stat(worker.MetadataPath(res, r.ID)); err != nil {
			incomplete++
			t.Errorf("row %q: metadata: %v", title, err)
		}
	}
	var parts []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".part") {
			parts = append(parts, path)
		}
		return nil
	})
	if len(parts) > 0 {
		t.Errorf("%d .part files left, e.g. %s", len(parts), parts[0])
	}
	t.Logf("%s: %d rows, %d kills, %d duplicate jobs, %d rows incomplete, %d .part files",
		db, rows, killed, dups, incomplete, len(parts))
	if t.Failed() {
		fmt.Fprintf(os.Stderr, "last run's log:\n%s\n", last.String())
	}
}
