// Package worker runs a job table as openEO batch jobs across several
// back-ends: the Go counterpart of the openEO Python client's
// MultiBackendJobManager.
//
// A Manager claims not_started rows for back-ends with a free slot, creates
// their jobs through a StartJobFunc, starts them, follows their status with
// one listing per back-end per cycle, cancels jobs that run too long, and
// hands finished, failed and canceled jobs to handlers (by default: download
// the results, save the error logs). Every change goes to the job table
// (driver.Store) at once, guarded by the status it expects, so a run can be
// killed at any instant and resumed: nothing is lost, nothing done twice.
//
// The manager has one clock: package time. It reads the time with
// time.Now and waits with timers, nowhere else, and so do the remote
// client's retries, rate limits and breaker; run it inside a
// testing/synctest bubble and the whole run, back-off and polling
// included, goes by in virtual time.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// maxUnresolved bounds the tracking cycles that look for the job of a row
// queued_for_start whose creation is unknown (an answer lost, a crash)
// while the job listing fails; then the row ends start_failed.
const maxUnresolved = 10

// maxHandlerFailures bounds how often a run tries a job's handler before it
// leaves the row pending, its error in last_error, for the next run.
const maxHandlerFailures = 3

// Manager runs a job table. Create it with New and call Run.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	backends []*Backend
	byName   map[string]*Backend
	stats    stats

	wg   sync.WaitGroup
	wake chan struct{}

	health  map[string]*health // per back-end: can it be used now
	changes atomic.Int64       // statuses the back-end loops recorded
	// claimMu makes claiming a row and recording it as launching one step
	// for recoverRows, which runs in the back-end loops: a row claimed but
	// not yet recorded would look abandoned.
	claimMu sync.Mutex

	mu          sync.Mutex
	looping     bool                  // per back-end loops track (Run)
	launching   map[int64]string      // rows being created or started -> back-end
	handling    map[int64]string      // rows whose handler runs -> back-end
	failures    map[int64]int         // handler failures per row
	described   map[int64]*remote.Job // final descriptions kept for handlers
	cancels     map[int64]int         // cancel requests sent per row
	undescribed map[int64]int         // cycles a final job's description failed
	unresolved  map[int64]int         // cycles a row's job could not be looked for by its tag
	dirs        map[string]bool       // job ids whose folder a handler writes
	gates       map[string]*gate      // per back-end: may it take jobs now
	bg          *background           // set by Start
	listPages   map[string]int        // per back-end: pages its last listing took

	// missing holds the rows whose handler this run gave up on.
	missing map[int64]MissingResult

	prog *progress // snapshots and events, see progress.go
	lim  *limits   // MaxCosts and MaxJobs, see limits.go
}

// New checks cfg, fills in its defaults and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Backends = slices.Clone(cfg.Backends)
	cfg.setDefaults()
	prog := newProgress()
	m := &Manager{
		cfg:         cfg,
		log:         slog.New(&eventHandler{inner: cfg.Logger.Handler(), prog: prog}),
		prog:        prog,
		lim:         newLimits(cfg),
		byName:      map[string]*Backend{},
		wake:        make(chan struct{}, 1),
		health:      map[string]*health{},
		launching:   map[int64]string{},
		handling:    map[int64]string{},
		undescribed: map[int64]int{},
		unresolved:  map[int64]int{},
		failures:    map[int64]int{},
		missing:     map[int64]MissingResult{},
		described:   map[int64]*remote.Job{},
		cancels:     map[int64]int{},
		dirs:        map[string]bool{},
		gates:       map[string]*gate{},
		listPages:   map[string]int{},
	}
	for i := range m.cfg.Backends {
		b := &m.cfg.Backends[i]
		m.backends = append(m.backends, b)
		m.byName[b.Name] = b
		m.gates[b.Name] = &gate{min: m.cfg.MinBackoff, max: m.cfg.MaxBackoff}
		m.health[b.Name] = &health{client: b.Client}
	}
	return m, nil
}

// Stats returns the counters of the run so far, named as in the Python
// client ("job start", "job finished", "job failed", ...).
func (m *Manager) Stats() map[string]int { return m.stats.snapshot() }

func (m *Manager) now() string { return time.Now().UTC().Format(time.RFC3339) }

// Run runs the table until no row is left to do, or ctx ends. It returns
// nil when the table is done, and context.Cause(ctx) when stopped; the
// table is consistent either way and the next Run resumes it. Errors of
// the store end the run; errors of back-ends are recorded in the rows, and
// a back-end that cannot be used is paused while the others go on. When no
// back-end can take the rows left, the error names each with its URL and
// why. When the rows are done but the results (or error logs) of some
// could not be written, it returns a *MissingResultsError
// (ErrResultsMissing) listing them; they stay download_pending unless no
// attempt can mend them.
func (m *Manager) Run(ctx context.Context) error {
	if wc, ok := m.cfg.Store.(driver.WriteChecker); ok {
		if err := wc.Writable(); err != nil {
			return fmt.Errorf("job table: %w", err)
		}
	}
	if err := m.checkConfigured(ctx); err != nil {
		return err
	}
	// One loop per back-end tracks it at its own cadence (see cadence.go).
	lctx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loopErrs := make(chan error, len(m.backends))
	m.mu.Lock()
	m.looping = true
	m.mu.Unlock()
	for _, b := range m.backends {
		loops.Go(func() {
			if err := m.backendLoop(lctx, b); err != nil {
				loopErrs <- err
			}
		})
	}
	// stop ends the loops, then waits for the work they started.
	stop := func() {
		stopLoops()
		loops.Wait()
		m.wg.Wait()
		m.mu.Lock()
		m.looping = false
		m.mu.Unlock()
	}
	var lastTrack time.Time
	for {
		track := time.Since(lastTrack) >= m.cfg.PollInterval
		if track {
			lastTrack = time.Now()
		}
		done, err := m.cycle(ctx, track)
		if err == nil && done && !track {
			// The run ends on a tracking cycle, so that its last progress
			// line and flush show the table as it ends.
			lastTrack = time.Now()
			done, err = m.cycle(ctx, true)
		}
		if err != nil && ctx.Err() == nil {
			stop()
			return errors.Join(err, m.flush(ctx))
		}
		if done {
			stop()
			if err := m.flush(ctx); err != nil {
				return err
			}
			m.log.InfoContext(ctx, "run complete", m.stats.logGroup())
			return errors.Join(m.missingResults(), m.limitErr())
		}
		timer := time.NewTimer(m.cfg.PollInterval - time.Since(lastTrack))
		select {
		case <-ctx.Done():
			timer.Stop()
			stop()
			if err := m.flush(ctx); err != nil {
				return err
			}
			m.log.InfoContext(context.WithoutCancel(ctx), "run stopped; run again to resume", "cause", context.Cause(ctx))
			return context.Cause(ctx)
		case err := <-loopErrs:
			timer.Stop()
			stop()
			return errors.Join(err, m.flush(ctx))
		case <-m.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// signal wakes the loop after a launch or a handler completed.
func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// cycle does one round of the main loop: hand final jobs to their
// handlers, fill free slots; when track is set (once per poll interval),
// also check the table for foreign back-ends and write it out. The
// back-ends' statuses are tracked by their own loops while Run runs (see
// backendLoop); outside Run, cycle tracks them itself. It reports whether
// the table is done.
func (m *Manager) cycle(ctx context.Context, track bool) (bool, error) {
	if track {
		if err := m.checkConfigured(ctx); err != nil {
			return false, err
		}
		m.mu.Lock()
		looping := m.looping
		m.mu.Unlock()
		if !looping {
			if err := m.track(ctx); err != nil {
				return false, err
			}
		}
		m.stats.add("track_statuses", 1)
	}
	if err := m.handleEvents(ctx, track); err != nil {
		return false, err
	}
	counts, err := m.cfg.Store.Counts(ctx)
	if err != nil {
		return false, fmt.Errorf("count rows: %w", err)
	}
	if err := m.launch(ctx, counts); err != nil {
		return false, err
	}
	m.reportProgress(ctx, counts, track)
	if track {
		if err := m.flush(ctx); err != nil {
			return false, err
		}
	}
	return m.done(ctx, counts)
}

// flush has a store that keeps changes in a journal or work file rewrite
// the table file others read: once per tracking cycle and when a run ends,
// never once per row. It runs even when ctx has ended.
func (m *Manager) flush(ctx context.Context) error {
	f, ok := m.cfg.Store.(driver.Flusher)
	if !ok {
		return nil
	}
	if err := f.Flush(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("write the job table: %w", err)
	}
	m.stats.add("job_db persist", 1)
	return nil
}

func (m *Manager) done(ctx context.Context, counts []driver.Count) (bool, error) {
	notStarted := 0
	for _, c := range counts {
		if c.Status.Active() {
			return false, nil
		}
		// A row given to a back-end that is not configured is left as it is.
		if c.Status == driver.NotStarted && (c.Backend == "" || m.byName[c.Backend] != nil) {
			notStarted += c.N
		}
	}
	if notStarted > 0 && !m.haltedWith(notStarted) {
		if m.inFlight(m.launching) == 0 {
			if err := m.errNoBackend(counts); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	m.mu.Lock()
	busy := len(m.launching) + len(m.handling)
	m.mu.Unlock()
	if busy > 0 {
		return false, nil
	}
	pending, err := m.pendingLeft(ctx)
	return !pending, err
}

// orphan reports whether a row's next step is left to nobody: its owner is
// this manager but no goroutine works on it (a previous run of ours), or
// its owner is gone.
func (m *Manager) orphan(j driver.Job, busy map[int64]string) bool {
	m.mu.Lock()
	_, working := busy[j.Key]
	m.mu.Unlock()
	if working {
		return false
	}
	return j.Worker == m.cfg.Owner.ID() || !m.cfg.Owner.Alive(j.Worker)
}

// checkConfigured refuses a table with active rows on back-ends that are
// not configured: nobody would follow them.
func (m *Manager) checkConfigured(ctx context.Context) error {
	active, err := m.cfg.Store.Select(ctx, driver.Filter{Statuses: driver.ActiveStatuses()})
	if err != nil {
		return fmt.Errorf("select active rows: %w", err)
	}
	unknown := map[string]int{}
	var noBackend []string
	for _, j := range active {
		if m.byName[j.Backend] != nil {
			continue
		}
		switch {
		case j.ID == "" && j.Tag == "" && j.Worker == "":
			// No job to follow and no claim of a worker: a row the
			// Python client left queued_for_start (or the like) when
			// its job was never created. It goes back to not_started,
			// as recoverRows does for a configured back-end.
			note := fmt.Sprintf("was %s without a job id (on back-end %q): no job was created; back to not_started", j.Status, j.Backend)
			err := m.storeUpdate(ctx, driver.Update{Key: j.Key, From: []driver.Status{j.Status}, Set: driver.Values{
				driver.ColStatus: driver.NotStarted, driver.ColBackend: j.Unclaimed(), driver.ColLastError: note,
				driver.ColUpdatedAt: m.now()}})
			if err != nil && !errors.Is(err, driver.ErrConflict) {
				return fmt.Errorf("row %d: %w", j.Key, err)
			}
			m.log.InfoContext(ctx, "row without a job back to not_started", "row", j.Key, "status", j.Status, "backend", j.Backend)
		case j.Backend == "":
			if len(noBackend) < 10 {
				noBackend = append(noBackend, fmt.Sprintf("row %d (job %s, %s)", j.Key, j.ID, j.Status))
			} else if len(noBackend) == 10 {
				noBackend = append(noBackend, "...")
			}
		default:
			unknown[j.Backend]++
		}
	}
	var errs []error
	if len(noBackend) > 0 {
		errs = append(errs, fmt.Errorf("active rows with a job id but no backend_name, so no back-end to follow their jobs on: %s; "+
			"set each row's backend_name to the NAME of a --backend NAME=URL", strings.Join(noBackend, ", ")))
	}
	if len(unknown) > 0 {
		var parts, flags []string
		for _, name := range slices.Sorted(maps.Keys(unknown)) {
			parts = append(parts, fmt.Sprintf("%s (%s)", name, rowsN(unknown[name])))
			flags = append(flags, "--backend "+name+"=URL")
		}
		errs = append(errs, fmt.Errorf("the table has active jobs on back-ends that are not configured: %s; add them with %s",
			strings.Join(parts, ", "), strings.Join(flags, " ")))
	}
	return errors.Join(errs...)
}

// recoverRows resolves what a stopped manager left half done on back-end
// b: rows claimed but whose job creation may or may not have reached the
// back-end (a crash, or an answer lost on its way back). It runs on every
// tracking cycle of b, so the rows of a process that dies while others run
// are taken over too.
func (m *Manager) recoverRows(ctx context.Context, b *Backend) error {
	active, err := m.cfg.Store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}, Backend: b.Name})
	if err != nil {
		return fmt.Errorf("select rows of %s queued for start: %w", b.Name, err)
	}
	listings := map[string]map[string]string{} // back-end -> tag -> job id
	var listErr error
	for _, j := range active {
		m.claimMu.Lock()
		orphan := m.orphan(j, m.launching)
		m.claimMu.Unlock()
		if j.Status != driver.QueuedForStart || !orphan || !m.stillIs(ctx, j, false) {
			continue // the selection is stale once a launch ended since
		}
		set := driver.Values{driver.ColUpdatedAt: m.now(), driver.ColWorker: m.cfg.Owner.ID()}
		switch {
		case j.ID != "":
			// Created, maybe started: the tracker starts it if it is still created.
			set[driver.ColStatus] = driver.Created
		case j.Tag == "":
			set[driver.ColStatus], set[driver.ColBackend] = driver.NotStarted, j.Unclaimed()
		default:
			tags, ok := listings[b.Name]
			if !ok {
				rctx, cancel := m.requestContext(ctx)
				tags, err = m.listTags(rctx, b)
				cancel()
				listErr = err
				if err != nil {
					// Its rows wait: the next cycle asks again.
					m.log.WarnContext(ctx, "cannot look for jobs created before a stop", "backend", b.Name, "err", err)
				}
				listings[b.Name] = tags // nil after an error
			}
			if tags == nil {
				// Bounded: a row whose job cannot be looked for ends
				// start_failed, keeping its tag, rather than wait for ever
				// or be freed and make a second job.
				m.mu.Lock()
				m.unresolved[j.Key]++
				n := m.unresolved[j.Key]
				m.mu.Unlock()
				if n < maxUnresolved {
					continue
				}
				set[driver.ColStatus] = driver.StartFailed
				set[driver.ColLastError] = fmt.Sprintf("cannot tell whether the job was created: the job listing failed %d times (%v); "+
					"a job with tag %s may exist on %s", n, listErr, j.Tag, b.Name)
				m.log.WarnContext(ctx, "giving up on a row whose job creation is unknown", "row", j.Key, "backend", b.Name, "tag", j.Tag, "err", listErr)
				break
			}
			if id := tags[j.Tag]; id != "" {
				m.log.InfoContext(ctx, "adopting job created before a stop", "row", j.Key, "job_id", id, "backend", b.Name)
				set[driver.ColID], set[driver.ColStatus] = id, driver.Created
				m.stats.add("job adopted", 1)
			} else {
				set[driver.ColStatus], set[driver.ColBackend] = driver.NotStarted, j.Unclaimed()
			}
		}
		err := m.storeUpdate(ctx, driver.Update{Key: j.Key, From: []driver.Status{driver.QueuedForStart}, Set: set})
		if err != nil && !errors.Is(err, driver.ErrConflict) {
			return fmt.Errorf("recover row %d: %w", j.Key, err)
		}
	}
	return nil
}

// listTags lists a back-end's jobs and maps their tags to job ids.
func (m *Manager) listTags(ctx context.Context, b *Backend) (map[string]string, error) {
	jobs, err := m.conn(b).ListJobs(ctx, m.cfg.ListPageSize)
	m.stats.add("job list", 1)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, j := range jobs {
		if t := remote.JobTag(j.Description); t != "" {
			tags[t] = j.ID
		}
	}
	return tags, nil
}

// newTag returns a random marker for a job about to be created.
func newTag() string {
	var b [9]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// update applies set to row key if its status is still from, and reports
// whether it did. A conflict means another actor moved the row on: logged,
// not an error.
func (m *Manager) update(ctx context.Context, log *slog.Logger, key int64, from driver.Status, set driver.Values) bool {
	err := m.storeUpdate(ctx, driver.Update{Key: key, From: []driver.Status{from}, Set: set})
	if err != nil {
		log.WarnContext(ctx, "update row", "row", key, "err", err)
		return false
	}
	return true
}

// goTracked runs f in the background for row key of back-end backend,
// recorded in set (launching or handling) while it runs, unless f already
// runs for that row.
func (m *Manager) goTracked(set map[int64]string, key int64, backend string, f func()) bool {
	m.mu.Lock()
	if _, ok := set[key]; ok {
		m.mu.Unlock()
		return false
	}
	set[key] = backend
	m.mu.Unlock()
	m.wg.Go(func() {
		defer func() {
			m.mu.Lock()
			delete(set, key)
			m.mu.Unlock()
			m.signal()
		}()
		f()
	})
	return true
}

func (m *Manager) inFlight(set map[int64]string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(set)
}

// inFlightOn counts the rows of set that belong to back-end backend.
func (m *Manager) inFlightOn(set map[int64]string, backend string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range set {
		if b == backend {
			n++
		}
	}
	return n
}

// stats counts events by name.
type stats struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *stats) add(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[name] += n
}

// logGroup is the counters as a log group "stats", one key=value per
// counter, in name order, spaces in names written "_" ("job_start=3").
func (s *stats) logGroup() slog.Attr {
	m := s.snapshot()
	var attrs []any
	for _, name := range slices.Sorted(maps.Keys(m)) {
		attrs = append(attrs, slog.Int(strings.ReplaceAll(name, " ", "_"), m[name]))
	}
	return slog.Group("stats", attrs...)
}

func (s *stats) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// storeUpdate is Store.Update with every last_error on one line (see
// OneLine): an OS error or a joined error may hold newlines, which would
// break the table's lines and the listings that show it.
func (m *Manager) storeUpdate(ctx context.Context, updates ...driver.Update) error {
	for _, u := range updates {
		if v, ok := u.Set[driver.ColLastError].(string); ok {
			u.Set[driver.ColLastError] = OneLine(v)
		}
	}
	return m.cfg.Store.Update(ctx, updates...)
}

// OneLine returns s with each run of line breaks (and the blanks around
// them) replaced by "; ", and surrounding blanks trimmed: the form in
// which errors are recorded in last_error.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return strings.TrimSpace(s)
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
