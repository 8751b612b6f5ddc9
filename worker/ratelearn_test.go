package worker_test

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// rateRun is the outcome of a run against back-ends with a per-client
// rate limit.
type rateRun struct {
	wall     time.Duration // virtual
	requests int           // over all back-ends
	tooMany  int           // answers 429
	done     int           // rows finished with their results
	log      lockedBuffer  // the clients' debug log
}

// lockedBuffer is a bytes.Buffer that several loggers may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runAgainstRateLimit runs jobs rows on two fake back-ends that answer 429
// (with Retry-After) above limit requests a second per client, with
// clients limited to rps requests a second (0: not configured), in
// virtual time, and reports what it took.
func runAgainstRateLimit(t *testing.T, rows, limit int, rps float64) *rateRun {
	r := &rateRun{}
	f := newFixture(t, rows, remotetest.Options{QueueTime: 100 * time.Millisecond, RunTime: 200 * time.Millisecond,
		Faults: remotetest.Faults{MaxRatePerClient: limit}}, "a", "b")
	for i, b := range f.cfg.Backends {
		srv := f.servers[b.Name]
		c, err := remote.New(srv.APIURL, &remote.Options{HTTPClient: virtualClient(f.clock),
			Policy: &remote.Policy{RequestsPerSecond: rps, Logger: slog.New(slog.NewTextHandler(&r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(srv.ValidToken())
		f.cfg.Backends[i].Client = c
		f.cfg.Backends[i].ParallelJobs = 20
		f.cfg.Backends[i].QueueingLimit = 20
	}
	f.cfg.PollInterval = 500 * time.Millisecond
	f.cfg.MinBackoff, f.cfg.MaxBackoff = 100*time.Millisecond, time.Second
	start := time.Now()
	f.run(t)
	r.wall = time.Since(start)
	for _, srv := range f.servers {
		r.requests += srv.TotalRequests()
		r.tooMany += srv.Injected()["429"]
	}
	for _, row := range f.rows(t) {
		if row.Status == driver.Finished && !row.DownloadPending {
			r.done++
		}
	}
	return r
}

// An unconfigured client learns each back-end's rate from its 429 answers
// and keeps under it: over a 100-job run against two back-ends that allow
// 20 requests a second per client, at most 10 answers 429, and the run
// takes at most 15% longer than what the rate allows: the same run with
// clients configured at exactly the limit (rps=20), which provoke no 429.
// In virtual time: the fake's limiter counts on the bubble's clock, so the
// numbers do not depend on the machine. (Before: 261 answers 429 here and
// 1.96x the time; 169 answers 429 in the run of issue 10.)
func TestUnconfiguredClientLearnsRate(t *testing.T) {
	const rows, limit, backends = 100, 20, 2
	var learned, configured *rateRun
	synctest.Test(t, func(t *testing.T) { learned = runAgainstRateLimit(t, rows, limit, 0) })
	synctest.Test(t, func(t *testing.T) { configured = runAgainstRateLimit(t, rows, limit, limit) })
	ratio := learned.wall.Seconds() / configured.wall.Seconds()
	bound := float64(configured.requests) / (limit * backends)
	t.Logf("learned: %v, %d requests, %d answers 429; configured rps=%d: %v, %d requests, %d answers 429 "+
		"(its requests at the limit alone: %.2fs); wall ratio learned/configured %.3f",
		learned.wall, learned.requests, learned.tooMany, limit, configured.wall, configured.requests, configured.tooMany, bound, ratio)
	if learned.done != rows || configured.done != rows {
		t.Errorf("%d and %d of %d rows finished with results", learned.done, configured.done, rows)
	}
	if configured.tooMany != 0 {
		t.Errorf("clients configured at the limit got %d answers 429", configured.tooMany)
	}
	if learned.tooMany > 4 {
		t.Logf("debug log of the unconfigured clients:\n%s", learned.log.String())
	}
	if learned.tooMany > 10 {
		t.Errorf("%d answers 429 to the unconfigured clients, want at most 10", learned.tooMany)
	}
	if ratio > 1.15 {
		t.Errorf("the unconfigured run took %.2fx the time of the configured one, want at most 1.15x", ratio)
	}
}
