package worker_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// TestRunThroughFaults is the acceptance run of the resilient client: 200
// jobs on a back-end that fails 5% of requests (500, an HTML 502, 503, and
// answers to job creation lost after the job was made), answers 429 above
// 20 requests a second (the client keeps to 16, a margin below the quota
// as a user would set it), cuts 20% of downloads in the middle, and expires
// access tokens every 30 seconds. Every job must end finished with its
// results whole on disk, none created twice, and the back-end must never
// see more than 20 requests in a second.
//
// It runs in virtual time (about 75 s of it, some seconds of CPU): the
// back-end counts requests by the time the client sent them, so the peak
// it sees is the client's rate limit itself. In real time a loaded machine
// delays some requests between their permit and their arrival and lets
// them arrive together: 21 in a second once, against a limit of 20 the
// client kept.
func TestRunThroughFaults(t *testing.T) { synctest.Test(t, runThroughFaults) }

func runThroughFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("200 jobs through faults: seconds of CPU")
	}
	const jobs, size = 200, 20_000
	clock := newStampClock()
	srv := startServer(t, remotetest.Options{
		QueueTime: 50 * time.Millisecond, RunTime: 200 * time.Millisecond, AssetSize: size,
		Faults: remotetest.Faults{Seed: 42, ErrorRate: 0.05, MaxRate: 20, DropRate: 0.2, TokenTTL: 30 * time.Second},
	}, clock)
	c, err := remote.Connect(t.Context(), srv.URL, &remote.Options{HTTPClient: virtualClient(clock), Policy: &remote.Policy{
		RequestsPerSecond: 16, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: 2 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AuthenticateBasic(t.Context(), "user", "password"); err != nil {
		t.Fatal(err)
	}
	store := jobTable(t, jobs)
	root := t.TempDir()
	m, err := worker.New(worker.Config{
		Store: store, Backends: []worker.Backend{{Name: "flaky", Client: c, ParallelJobs: 30, QueueingLimit: 30}},
		StartJob: startJob, RootDir: root, PollInterval: 500 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}

	got, _ := store.Select(t.Context(), driver.Filter{})
	for _, r := range got {
		if r.Status != driver.Finished || r.DownloadPending {
			t.Errorf("row %v: %q pending=%v last_error=%q", r.Data["title"], r.Status, r.DownloadPending, r.LastError)
			continue
		}
		b, err := os.ReadFile(filepath.Join(worker.JobDir(root, r.ID), "result.tif"))
		if err != nil || !bytes.Equal(b, remotetest.AssetBytes(r.ID, "result.tif", size)) {
			t.Errorf("row %v: result incomplete (%d bytes, %v)", r.Data["title"], len(b), err)
		}
	}
	perTitle := map[string]int{}
	for _, j := range srv.Jobs() {
		perTitle[j.Title]++
	}
	for title, n := range perTitle {
		if n != 1 {
			t.Errorf("%d back-end jobs for %q", n, title)
		}
	}
	if len(perTitle) != jobs {
		t.Errorf("%d back-end jobs, want %d", len(perTitle), jobs)
	}
	if p := srv.PeakRate(); p > 20 {
		t.Errorf("back-end saw %d requests in one second, limit 20", p)
	}
	inj := srv.Injected()
	for _, k := range []string{"500", "502", "503", "drop", "lost-create"} {
		if inj[k] == 0 {
			t.Errorf("no %s fault injected: that path went untested (%v)", k, inj)
		}
	}
	logins := srv.Requests()["GET /credentials/basic"]
	t.Logf("%d jobs in %v; %d requests (%.1f per job) over %d connections, peak %d/s; faults %v; logins %d; stats %v",
		jobs, time.Since(start).Round(time.Second), srv.TotalRequests(), float64(srv.TotalRequests())/jobs,
		srv.Connections(), srv.PeakRate(), inj, logins, m.Stats())
	if time.Since(start) > 35*time.Second && logins < 2 {
		t.Errorf("%d logins in a run longer than the token lifetime: tokens were not renewed", logins)
	}
}
