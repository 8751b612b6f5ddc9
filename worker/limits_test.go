package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// runLimited runs f's table and returns the run's *LimitError (failing
// the test on any other outcome).
func runLimited(t *testing.T, f *fixture) *worker.LimitError {
	t.Helper()
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = m.Run(ctx)
	var le *worker.LimitError
	if !errors.As(err, &le) || !errors.Is(err, worker.ErrLimitReached) {
		t.Fatalf("Run: %v, want a *LimitError", err)
	}
	return le
}

// startedJobs counts the jobs ever started on f's back-ends, and fails
// the test if a job that was never started is left there.
func startedJobs(t *testing.T, f *fixture) int {
	t.Helper()
	n := 0
	for _, srv := range f.servers {
		for _, j := range srv.Jobs() {
			if j.Started {
				n++
			} else {
				t.Errorf("job %s (%s) left created on the back-end", j.ID, j.Title)
			}
		}
	}
	return n
}

func countStatus(rows []driver.Job, s driver.Status) int {
	n := 0
	for _, r := range rows {
		if r.Status == s {
			n++
		}
	}
	return n
}

// With estimates, a job whose estimate would take the costs past
// MaxCosts is not started: 2 credits a job and a budget of 5 start two
// jobs, even with room for ten at once.
func TestMaxCostsWithEstimates(t *testing.T) { synctest.Test(t, maxCostsWithEstimates) }

func maxCostsWithEstimates(t *testing.T) {
	opts := remotetest.Options{
		QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond,
		Costs:    func(*remote.JobRequest) float64 { return 2 },
		Estimate: func(*remote.JobRequest) (float64, error) { return 2, nil },
	}
	f := newFixture(t, 10, opts)
	f.cfg.Backends[0].ParallelJobs = 10
	f.cfg.MaxCosts = 5
	le := runLimited(t, f)
	if le.Limit != "max-costs" || le.NotStarted != 8 || !strings.Contains(le.Reason, "estimated at 2") {
		t.Errorf("limit error = %+v", le)
	}
	rows := f.rows(t)
	if n := countStatus(rows, driver.Finished); n != 2 {
		t.Errorf("%d rows finished, want 2", n)
	}
	if n := countStatus(rows, driver.NotStarted); n != 8 {
		t.Errorf("%d rows not_started, want 8", n)
	}
	for _, r := range rows {
		if r.Status == driver.NotStarted && (r.ID != "" || r.Backend != "") {
			t.Errorf("row %d left not_started with id %q on %q", r.Key, r.ID, r.Backend)
		}
	}
	if n := startedJobs(t, f); n != 2 {
		t.Errorf("%d jobs started, want 2", n)
	}
}

// Without estimates, the costs recorded in the table count: 1.5 credits
// a job and a budget of 3 start two jobs one after the other, and a
// table that already records 3 credits starts none.
func TestMaxCostsFromRecordedCosts(t *testing.T) { synctest.Test(t, maxCostsFromRecordedCosts) }

func maxCostsFromRecordedCosts(t *testing.T) {
	opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond}
	f := newFixture(t, 5, opts)
	f.cfg.Backends[0].ParallelJobs = 1
	f.cfg.MaxCosts = 3
	le := runLimited(t, f)
	if le.Limit != "max-costs" || le.NotStarted != 3 {
		t.Errorf("limit error = %+v", le)
	}
	if n := startedJobs(t, f); n != 2 {
		t.Errorf("%d jobs started, want 2", n)
	}
	if n := countStatus(f.rows(t), driver.Finished); n != 2 {
		t.Errorf("%d rows finished, want 2", n)
	}

	// Run again with the same budget: 3 credits are recorded already.
	le = runLimited(t, f)
	if le.NotStarted != 3 {
		t.Errorf("second run: %+v", le)
	}
	if n := startedJobs(t, f); n != 2 {
		t.Errorf("second run started jobs: %d in all, want 2", n)
	}
}

// MaxJobs caps the jobs one run starts.
func TestMaxJobs(t *testing.T) { synctest.Test(t, maxJobs) }

func maxJobs(t *testing.T) {
	opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond}
	f := newFixture(t, 5, opts, "a", "b")
	f.cfg.Backends[0].ParallelJobs, f.cfg.Backends[1].ParallelJobs = 4, 4
	f.cfg.MaxJobs = 3
	var mu sync.Mutex
	var last worker.Progress
	f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); last = p; mu.Unlock() }
	le := runLimited(t, f)
	if le.Limit != "max-jobs" || le.NotStarted != 2 {
		t.Errorf("limit error = %+v", le)
	}
	if n := startedJobs(t, f); n != 3 {
		t.Errorf("%d jobs started, want 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if last.Halted == "" || last.Launched != 3 || last.MaxJobs != 3 {
		t.Errorf("last progress: halted %q launched %d max %d", last.Halted, last.Launched, last.MaxJobs)
	}
	found := false
	for _, ev := range last.Events {
		found = found || strings.Contains(ev.Message, "job cap of 3 reached")
	}
	if !found {
		t.Errorf("no event says the cap was reached: %v", last.Events)
	}
}

// The progress snapshots count the table per back-end, end with every
// row done, note a failed job as an event, and a tracking cycle logs one
// "progress" line.
func TestProgress(t *testing.T) { synctest.Test(t, progressSnapshots) }

func progressSnapshots(t *testing.T) {
	opts := remotetest.Options{
		QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond,
		Outcome: func(j *remote.JobRequest) error {
			if j.Title == "tile 2" {
				return errors.New("no data")
			}
			return nil
		},
	}
	f := newFixture(t, 6, opts, "a", "b")
	var logs logCounter
	f.cfg.Logger = slog.New(&logs)
	var mu sync.Mutex
	var snaps []worker.Progress
	f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
	m := f.run(t)
	mu.Lock()
	defer mu.Unlock()
	if len(snaps) == 0 {
		t.Fatal("OnProgress never called")
	}
	last := snaps[len(snaps)-1]
	if last.Total != 6 || last.Done != 6 || last.DoneThisRun != 6 || last.ByStatus[driver.Finished] != 5 || last.ByStatus[driver.Error] != 1 {
		t.Errorf("last snapshot: %+v", last)
	}
	if len(last.Backends) != 2 || last.Backends[0].Name != "a" || last.Backends[0].Total+last.Backends[1].Total != 6 {
		t.Errorf("back-ends: %+v", last.Backends)
	}
	if last.Rate <= 0 || last.NextPoll.IsZero() || last.StartedAt.IsZero() {
		t.Errorf("rate %v next poll %v started %v", last.Rate, last.NextPoll, last.StartedAt)
	}
	failed := false
	for _, ev := range last.Events {
		failed = failed || strings.Contains(ev.Message, "failed") && ev.Backend != "" && ev.Row != 0
	}
	if !failed {
		t.Errorf("events lack the failed job: %v", last.Events)
	}
	if got := m.Progress(); got.Done != 6 {
		t.Errorf("Manager.Progress().Done = %d", got.Done)
	}
	polls := m.Stats()["track_statuses"]
	if n := logs.count("progress"); n != polls || n == 0 {
		t.Errorf("%d progress log lines for %d tracking cycles", n, polls)
	}
}

// logCounter is a slog.Handler that counts records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// "run complete" logs the counters one key=value each (a group "stats"),
// not as a Go map.
func TestRunCompleteStatsGroup(t *testing.T) { synctest.Test(t, runCompleteStatsGroup) }

func runCompleteStatsGroup(t *testing.T) {
	opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond}
	f := newFixture(t, 2, opts)
	var logs logBuffer
	f.cfg.Logger = logs.logger()
	f.run(t)
	var line string
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, `msg="run complete"`) {
			line = l
		}
	}
	if line == "" || strings.Contains(line, "map[") || !strings.Contains(line, "stats.job_start=2") || !strings.Contains(line, "stats.job_finished=2") {
		t.Errorf("run complete line: %q", line)
	}
}

// A run whose budget the table's costs already reach creates no job at
// all, not even to ask for its estimate; and while jobs are being created
// no more are created than the budget leaves room for: 2 credits a job, a
// budget of 4 and room for four at once create two jobs, then none.
func TestMaxCostsUsedUpCreatesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { maxCostsUsedUp(t, 4) })
}

func maxCostsUsedUp(t *testing.T, budget float64) {
	opts := remotetest.Options{
		QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond,
		Costs:    func(*remote.JobRequest) float64 { return 2 },
		Estimate: func(*remote.JobRequest) (float64, error) { return 2, nil },
	}
	f := newFixture(t, 8, opts)
	f.cfg.Backends[0].ParallelJobs = 4
	f.cfg.MaxCosts = budget
	runLimited(t, f)
	srv := f.servers["a"]
	created := srv.Requests()["POST /jobs"]
	if created != 2 {
		t.Fatalf("first run created %d jobs, want 2: %v", created, srv.Requests())
	}
	le := runLimited(t, f)
	if le.Limit != "max-costs" || le.NotStarted != 6 {
		t.Errorf("second run: %+v", le)
	}
	if n := srv.Requests()["POST /jobs"] - created; n != 0 {
		t.Errorf("second run created %d jobs with the budget used up", n)
	}
}

// The ETA is for the rows that will run in this run: with MaxJobs 12 on
// 20 rows, the 8 rows the cap leaves count in no ETA, before the cap is
// reached too.
func TestETAWithMaxJobs(t *testing.T) { synctest.Test(t, etaWithMaxJobs) }

func etaWithMaxJobs(t *testing.T) {
	opts := remotetest.Options{QueueTime: 2 * time.Second, RunTime: 3 * time.Second}
	f := newFixture(t, 20, opts)
	f.cfg.Backends[0].ParallelJobs = 4
	f.cfg.PollInterval = time.Second
	f.cfg.MaxJobs = 12
	var mu sync.Mutex
	var snaps []worker.Progress
	f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
	runLimited(t, f)
	mu.Lock()
	defer mu.Unlock()
	capped := 0
	for _, p := range snaps {
		if p.Rate == 0 {
			continue
		}
		ns := p.ByStatus[driver.NotStarted]
		willStart := max(0, p.MaxJobs-p.Launched)
		if p.Halted != "" {
			willStart = 0
		}
		left := p.Total - p.Done - ns + min(ns, willStart)
		want := time.Duration(float64(left) / p.Rate * float64(time.Minute)).Round(time.Second)
		if left == 0 {
			want = 0
		}
		if p.ETA != want {
			t.Errorf("at %v (launched %d, %d not_started, halted %q): ETA %v, want %v for %d rows", p.Time, p.Launched, ns, p.Halted, p.ETA, want, left)
		}
		if p.Halted == "" && ns > willStart && p.ETA > 0 {
			capped++
		}
	}
	if capped == 0 {
		t.Error("no snapshot before the cap was reached with rows beyond it")
	}
}

// Under MaxCosts the ETA counts the not_started rows the budget has room
// for at the largest estimate so far: 2 credits a job and a budget of 9
// leave room for four of ten jobs.
func TestETAWithMaxCosts(t *testing.T) { synctest.Test(t, etaWithMaxCosts) }

func etaWithMaxCosts(t *testing.T) {
	opts := remotetest.Options{
		QueueTime: 2 * time.Second, RunTime: 3 * time.Second,
		Costs:    func(*remote.JobRequest) float64 { return 2 },
		Estimate: func(*remote.JobRequest) (float64, error) { return 2, nil },
	}
	f := newFixture(t, 10, opts)
	f.cfg.Backends[0].ParallelJobs = 1
	f.cfg.PollInterval = time.Second
	f.cfg.MaxCosts = 9
	var mu sync.Mutex
	var snaps []worker.Progress
	f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
	runLimited(t, f)
	mu.Lock()
	defer mu.Unlock()
	checked := 0
	for _, p := range snaps {
		if p.Rate == 0 || p.Halted != "" {
			continue
		}
		ns := p.ByStatus[driver.NotStarted]
		room := int((p.Costs.Max - p.Costs.Recorded - p.Costs.Active) / 2)
		left := p.Total - p.Done - ns + min(ns, room)
		want := time.Duration(float64(left) / p.Rate * float64(time.Minute)).Round(time.Second)
		if p.ETA != want {
			t.Errorf("at %v (%d not_started, room for %d): ETA %v, want %v for %d rows", p.Time, ns, room, p.ETA, want, left)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no snapshot with a rate before the budget was reached")
	}
}
