package worker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
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

// cadenceOpts are jobs slow enough, in virtual time, that the time a
// back-end's rows take is measured to well under 10% (updated_at has
// whole seconds).
var cadenceOpts = remotetest.Options{QueueTime: 2 * time.Second, RunTime: 3 * time.Second}

const cadencePoll = time.Second

// refusingURL returns an API URL on 127.0.0.1 where nothing listens: every
// connection is refused.
func refusingURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + remotetest.APIPath
}

// addDead adds a back-end named name that refuses every connection.
func (f *fixture) addDead(t *testing.T, name string) string {
	t.Helper()
	u := refusingURL(t)
	c, err := remote.New(u, &remote.Options{HTTPClient: virtualClient(newStampClock())})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("token")
	f.cfg.Backends = append(f.cfg.Backends, worker.Backend{Name: name, Client: c, ParallelJobs: 2})
	return u
}

// logBuffer collects a manager's logs, at debug level.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runFor is run with a longer time limit (virtual time).
func (f *fixture) runFor(t *testing.T, limit time.Duration) {
	t.Helper()
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// runAlone returns the virtual time back-end "a" alone takes for rows rows.
func runAlone(t *testing.T, rows int) time.Duration {
	var d time.Duration
	t.Run("alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, rows, cadenceOpts, "a")
			f.cfg.PollInterval = cadencePoll
			start := time.Now()
			f.runFor(t, 10*time.Minute)
			d = time.Since(start)
		})
	})
	return d
}

// checkCadence fails when two listings of srv, the tracking cycles of its
// back-end, are further apart than the poll interval + 20%.
func checkCadence(t *testing.T, srv *remotetest.Server) {
	t.Helper()
	times := srv.Arrivals("GET /jobs")
	if len(times) < 5 {
		t.Fatalf("%d listings: the back-end was hardly tracked", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap > cadencePoll*12/10 {
			t.Errorf("listings %d and %d of the healthy back-end %v apart, poll interval %v", i-1, i, gap, cadencePoll)
		}
	}
}

// TestDeadBackendHoldsNothing: a back-end that refuses connections from
// the start is paused, named with its URL and cause at warn level; the
// healthy one keeps its cadence and takes every row in the time it takes
// alone (+10%).
func TestDeadBackendHoldsNothing(t *testing.T) {
	const rows = 12
	alone := runAlone(t, rows)
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, rows, cadenceOpts, "a")
		deadURL := f.addDead(t, "dead")
		f.cfg.PollInterval = cadencePoll
		f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Second, 8*time.Second
		var logs logBuffer
		f.cfg.Logger = logs.logger()
		start := time.Now()
		f.runFor(t, 10*time.Minute)
		took := time.Since(start)
		for _, r := range f.rows(t) {
			if r.Status != driver.Finished || r.Backend != "a" {
				t.Errorf("row %d: %s on %q, want finished on a", r.Key, r.Status, r.Backend)
			}
		}
		if took > alone*11/10 {
			t.Errorf("rows took %v with a dead back-end beside, %v alone: more than 10%% longer", took, alone)
		}
		checkCadence(t, f.servers["a"])
		out := logs.String()
		warn := ""
		for line := range strings.Lines(out) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "backend=dead") {
				warn = line
				break
			}
		}
		if !strings.Contains(warn, deadURL) || !strings.Contains(warn, "connection refused") {
			t.Errorf("no warning naming the dead back-end's URL and cause; first: %q", warn)
		}
		if !strings.Contains(out, "checking back-end again") {
			t.Errorf("the checks of the dead back-end are not logged at debug level")
		}
		t.Logf("%v alone, %v with a dead back-end", alone, took)
	})
}

// TestNoUsableBackendSaysWhy: when no back-end can be used the run fails,
// naming each back-end's URL and cause, not "circuit breaker open".
func TestNoUsableBackendSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3, cadenceOpts, "a")
		f.cfg.Backends = nil
		u1, u2 := f.addDead(t, "one"), f.addDead(t, "two")
		var logs logBuffer
		f.cfg.Logger = logs.logger()
		m, err := worker.New(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		err = m.Run(ctx)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("Run succeeded without a usable back-end")
		}
		msg := err.Error()
		for _, want := range []string{"one (" + u1, "two (" + u2, "connection refused"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, "circuit breaker") {
			t.Errorf("error %q blames the circuit breaker, not the back-end", msg)
		}
		if out := logs.String(); !strings.Contains(out, "back-end unusable") || strings.Contains(out, "other back-ends go on") {
			t.Errorf("the warnings say other back-ends go on, with none usable:\n%s", out)
		}
		for _, r := range f.rows(t) {
			if r.Status != driver.NotStarted || r.Attempts != 0 {
				t.Errorf("row %d: %s after %d attempts, want not_started untouched", r.Key, r.Status, r.Attempts)
			}
		}
	})
}

// TestBackendStoppedMidway: a back-end stopped in the middle of the run
// holds up neither the healthy back-end's cycles nor its jobs: the rows
// it takes finish within 10% of the time they take on it alone.
func TestBackendStoppedMidway(t *testing.T) {
	const rows = 16
	var onA int
	var took time.Duration
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, rows, cadenceOpts, "a", "b")
		f.cfg.PollInterval = cadencePoll
		f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Second, 8*time.Second
		var mu sync.Mutex
		var snaps []worker.Progress
		f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
		m, err := worker.New(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(4 * time.Second)
			outside(f.servers["b"].Close)
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
		defer cancel()
		start := time.Now()
		if err := m.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v, want it to wait for the stopped back-end's jobs until stopped", err)
		}
		var last time.Time
		for _, r := range f.rows(t) {
			switch {
			case r.Backend == "a":
				onA++
				if r.Status != driver.Finished {
					t.Errorf("row %d on a: %s", r.Key, r.Status)
				}
				at, _ := time.Parse(time.RFC3339, r.UpdatedAt)
				if at.After(last) {
					last = at
				}
			case r.Backend == "b" && !r.Status.Active():
				// Finished before the stop.
			case r.Backend != "b":
				t.Errorf("row %d: %s on %q", r.Key, r.Status, r.Backend)
			}
		}
		took = last.Sub(start)
		checkCadence(t, f.servers["a"])
		checkStoppedProgress(t, snaps)
	})
	alone := runAlone(t, onA)
	if took > alone*11/10+time.Second { // + updated_at's rounding
		t.Errorf("a's %d rows took %v beside a back-end stopped midway, %v alone", onA, took, alone)
	}
	t.Logf("a's %d rows: %v beside a stopped back-end, %v alone", onA, took, alone)
}

// checkStoppedProgress checks the snapshots of TestBackendStoppedMidway
// once b is unusable: its pause says when it is checked again, and the
// ETA is for the rows that can progress, not b's waiting ones (none left
// at the end: no ETA).
func checkStoppedProgress(t *testing.T, snaps []worker.Progress) {
	t.Helper()
	seen := 0
	for _, p := range snaps {
		b := p.Backends[1]
		if !b.Unusable || p.Rate == 0 {
			continue
		}
		seen++
		if !strings.Contains(b.Paused, "checked again at") || b.PausedUntil.Before(p.Time) {
			t.Errorf("at %v b is paused %q until %v", p.Time, b.Paused, b.PausedUntil)
		}
		waiting := 0
		for st, n := range b.ByStatus {
			if !st.Final() {
				waiting += n
			}
		}
		left := p.Total - p.Done - waiting
		want := time.Duration(float64(left) / p.Rate * float64(time.Minute)).Round(time.Second)
		if p.ETA != want {
			t.Errorf("at %v ETA %v, want %v for %d rows that can progress (%d wait on b)", p.Time, p.ETA, want, left, waiting)
		}
	}
	if seen == 0 {
		t.Fatal("no snapshot with b unusable")
	}
	if last := snaps[len(snaps)-1]; last.ETA != 0 {
		t.Errorf("last snapshot: ETA %v with only rows waiting on the stopped back-end", last.ETA)
	}
}

// TestListingFailsJobsAskedOneByOne: a back-end whose listing answers 500
// while GET /jobs/{id} works: statuses come from the per-job requests.
func TestListingFailsJobsAskedOneByOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond, Faults: remotetest.Faults{ListError: true}}
		f := newFixture(t, 6, opts, "a")
		f.run(t)
		for _, r := range f.rows(t) {
			if r.Status != driver.Finished || r.CPU == "" || r.StartTime == "" || r.LastError != "" {
				t.Errorf("row %d: %s cpu %q start %q last_error %q", r.Key, r.Status, r.CPU, r.StartTime, r.LastError)
			}
		}
		if f.servers["a"].Injected()["list-500"] == 0 {
			t.Error("the listing never failed: the fallback went untested")
		}
	})
}

// TestStatusUnknownSaysWhy: when neither the listing nor the job's own
// request answers, the row says why in last_error.
func TestStatusUnknownSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := remotetest.Options{QueueTime: time.Hour, Faults: remotetest.Faults{ListError: true}}
		f := newFixture(t, 2, opts, "a")
		f.cfg.PollInterval = cadencePoll
		f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Second, 8*time.Second
		m, err := worker.New(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(time.Second)
			outside(f.servers["a"].Close)
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		m.Run(ctx)
		for _, r := range f.rows(t) {
			if r.Status != driver.Queued || !strings.Contains(r.LastError, "status not updated") ||
				!strings.Contains(r.LastError, "connection refused") {
				t.Errorf("row %d: %s, last_error %q: want queued and why it is not updated", r.Key, r.Status, r.LastError)
			}
		}
	})
}

// TestStartAcceptedButStaysCreated: a back-end that accepts starts (202)
// but leaves the job created: the job is started at most
// MaxStartAttempts times, then the row is start_failed with the reason and
// the job deleted; the run ends.
func TestStartAcceptedButStaysCreated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 3, remotetest.Options{Faults: remotetest.Faults{IgnoreStart: true}}, "a")
		f.cfg.MaxStartAttempts = 3
		f.run(t)
		for _, r := range f.rows(t) {
			if r.Status != driver.StartFailed || r.Attempts != 3 || !strings.Contains(r.LastError, "still created") {
				t.Errorf("row %d: %s after %d attempts, last_error %q", r.Key, r.Status, r.Attempts, r.LastError)
			}
		}
		srv := f.servers["a"]
		if n := srv.Requests()["POST /jobs/{job_id}/results"]; n != 3*3 {
			t.Errorf("%d start requests for 3 jobs, want 3 each", n)
		}
		if jobs := srv.Jobs(); len(jobs) != 0 {
			t.Errorf("%d jobs left on the back-end, want them deleted", len(jobs))
		}
	})
}

// TestCancelIgnored: a cancel the back-end ignores is sent again each
// cycle up to MaxCancelRequests times, then the row ends canceled with
// the reason, and the run ends.
func TestCancelIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := remotetest.Options{RunTime: time.Hour, Faults: remotetest.Faults{IgnoreCancel: true}}
		f := newFixture(t, 2, opts, "a")
		f.cfg.CancelRunningJobAfter = 50 * time.Millisecond
		f.cfg.MaxCancelRequests = 4
		f.run(t)
		for _, r := range f.rows(t) {
			if r.Status != driver.Canceled || !strings.Contains(r.LastError, "ignored 4 cancel requests") {
				t.Errorf("row %d: %s, last_error %q", r.Key, r.Status, r.LastError)
			}
		}
		if n := f.servers["a"].Requests()["DELETE /jobs/{job_id}/results"]; n != 2*4 {
			t.Errorf("%d cancel requests for 2 jobs, want 4 each", n)
		}
	})
}

// TestLostStartAnswerBookkeeping: starts that took effect but whose answer
// was lost leave rows exactly as a clean run does.
func TestLostStartAnswerBookkeeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond,
			Faults: remotetest.Faults{LostStarts: 3}}
		f := newFixture(t, 4, opts, "a")
		f.run(t)
		if f.servers["a"].Injected()["lost-start"] != 3 {
			t.Fatalf("faults %v: the lost starts went untested", f.servers["a"].Injected())
		}
		for _, r := range f.rows(t) {
			if r.Status != driver.Finished || r.Attempts != 1 || r.StartTime == "" || r.RunningStartTime == "" ||
				r.LastError != "" || r.CPU == "" || r.Duration == "" || r.Costs == nil || r.DownloadPending {
				t.Errorf("row %d: %+v", r.Key, r)
			}
		}
		for title, n := range f.backendJobs() {
			if n != 1 {
				t.Errorf("%d back-end jobs for %q", n, title)
			}
		}
	})
}

// TestLostCreateWhileListingFails: a job creation whose answer is lost on
// a back-end whose listing fails cannot be resolved by its tag: the row
// waits a bounded number of cycles, then ends start_failed with the reason;
// no second job is made for it, and the other rows finish.
func TestLostCreateWhileListingFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond,
			Faults: remotetest.Faults{ListError: true, LostCreates: 1}}
		f := newFixture(t, 3, opts, "a")
		f.run(t)
		failed := 0
		for _, r := range f.rows(t) {
			switch r.Status {
			case driver.StartFailed:
				failed++
				if !strings.Contains(r.LastError, "cannot tell whether the job was created") || r.Tag == "" {
					t.Errorf("row %d: last_error %q tag %q", r.Key, r.LastError, r.Tag)
				}
			case driver.Finished:
			default:
				t.Errorf("row %d: %s", r.Key, r.Status)
			}
		}
		if failed != 1 {
			t.Errorf("%d rows start_failed, want the one whose create answer was lost", failed)
		}
		for title, n := range f.backendJobs() {
			if n != 1 {
				t.Errorf("%d back-end jobs for %q", n, title)
			}
		}
	})
}

// TestDeadBackendPausedInProgress: a back-end dead from the start shows
// paused in every progress snapshot and "progress" log line once checked,
// saying when it is checked again (PausedUntil, a time its health check is
// due), and its rows count in no ETA.
func TestDeadBackendPausedInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 6, cadenceOpts, "a")
		f.addDead(t, "dead")
		f.cfg.PollInterval = cadencePoll
		f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Second, 8*time.Second
		var logs logBuffer
		f.cfg.Logger = logs.logger()
		var mu sync.Mutex
		var snaps []worker.Progress
		f.cfg.OnProgress = func(p worker.Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
		f.runFor(t, 10*time.Minute)
		mu.Lock()
		defer mu.Unlock()
		checked := 0
		for i, p := range snaps {
			if !p.Polled || i == 0 {
				continue
			}
			d := p.Backends[1]
			if d.Name != "dead" || d.Paused == "" {
				t.Errorf("snapshot %d: dead back-end not paused: %+v", i, d)
				continue
			}
			checked++
			if !strings.Contains(d.Paused, "checked again at") || d.PausedUntil.Before(p.Time) || d.PausedUntil.After(p.Time.Add(8*time.Second)) {
				t.Errorf("snapshot %d at %v: paused %q until %v", i, p.Time, d.Paused, d.PausedUntil)
			}
		}
		if checked < 3 {
			t.Errorf("only %d snapshots to check", checked)
		}
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "msg=progress") && strings.Contains(line, "rate_per_min") && !strings.Contains(line, "backend_dead.paused=") &&
				strings.Contains(line, "next_poll") && !strings.Contains(line, "done=0 ") {
				t.Errorf("progress line without the dead back-end's pause: %s", line)
				break
			}
		}
	})
}
