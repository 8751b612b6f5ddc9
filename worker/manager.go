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
	"sync"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

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

	mu        sync.Mutex
	launching map[int64]bool        // rows being created or started
	handling  map[int64]bool        // rows whose handler runs
	failures  map[int64]int         // handler failures per row
	described map[int64]*remote.Job // final descriptions kept for handlers
	canceled  map[int64]bool        // rows we asked the back-end to cancel
	dirs      map[string]bool       // job ids whose folder a handler writes
	gates     map[string]*gate      // per back-end: may it take jobs now
	bg        *background           // set by Start
	listPages map[string]int        // per back-end: pages its last listing took

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
		cfg:       cfg,
		log:       slog.New(&eventHandler{inner: cfg.Logger.Handler(), prog: prog}),
		prog:      prog,
		lim:       newLimits(cfg),
		byName:    map[string]*Backend{},
		wake:      make(chan struct{}, 1),
		launching: map[int64]bool{},
		handling:  map[int64]bool{},
		failures:  map[int64]int{},
		missing:   map[int64]MissingResult{},
		described: map[int64]*remote.Job{},
		canceled:  map[int64]bool{},
		dirs:      map[string]bool{},
		gates:     map[string]*gate{},
		listPages: map[string]int{},
	}
	for i := range m.cfg.Backends {
		b := &m.cfg.Backends[i]
		m.backends = append(m.backends, b)
		m.byName[b.Name] = b
		m.gates[b.Name] = &gate{min: m.cfg.MinBackoff, max: m.cfg.MaxBackoff}
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
// the store end the run; errors of back-ends are recorded in the rows.
// When the rows are done but the results (or error logs) of some could not
// be written, it returns a *MissingResultsError (ErrResultsMissing) listing
// them; they stay download_pending unless no attempt can mend them.
func (m *Manager) Run(ctx context.Context) error {
	if wc, ok := m.cfg.Store.(driver.WriteChecker); ok {
		if err := wc.Writable(); err != nil {
			return fmt.Errorf("job table: %w", err)
		}
	}
	if err := m.recoverRows(ctx); err != nil {
		return err
	}
	var lastTrack time.Time
	for {
		track := time.Since(lastTrack) >= m.cfg.PollInterval
		if track {
			lastTrack = time.Now()
		}
		done, err := m.cycle(ctx, track)
		if err != nil && ctx.Err() == nil {
			m.wg.Wait()
			return errors.Join(err, m.flush(ctx))
		}
		if done {
			m.wg.Wait()
			if err := m.flush(ctx); err != nil {
				return err
			}
			m.log.InfoContext(ctx, "run complete", "stats", m.stats.snapshot())
			return errors.Join(m.missingResults(), m.limitErr())
		}
		timer := time.NewTimer(m.cfg.PollInterval - time.Since(lastTrack))
		select {
		case <-ctx.Done():
			timer.Stop()
			m.wg.Wait()
			if err := m.flush(ctx); err != nil {
				return err
			}
			m.log.InfoContext(context.WithoutCancel(ctx), "run stopped; run again to resume", "cause", context.Cause(ctx))
			return context.Cause(ctx)
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

// cycle does one round: track statuses (when due), hand final jobs to
// their handlers, fill free slots. It reports whether the table is done.
func (m *Manager) cycle(ctx context.Context, track bool) (bool, error) {
	if track {
		if err := m.recoverRows(ctx); err != nil {
			return false, err
		}
		if err := m.track(ctx); err != nil {
			return false, err
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
		if c.Status == driver.NotStarted {
			notStarted += c.N
		}
	}
	if notStarted > 0 && !m.haltedWith(notStarted) {
		if m.inFlight(m.launching) == 0 {
			if err := m.errNoBackend(notStarted); err != nil {
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
func (m *Manager) orphan(j driver.Job, busy map[int64]bool) bool {
	m.mu.Lock()
	working := busy[j.Key]
	m.mu.Unlock()
	if working {
		return false
	}
	return j.Worker == m.cfg.Owner.ID() || !m.cfg.Owner.Alive(j.Worker)
}

// recoverRows resolves what a stopped manager left half done: rows claimed
// but whose job creation may or may not have reached the back-end. It runs
// at start and on every tracking cycle, so the rows of a process that dies
// while others run are taken over too.
func (m *Manager) recoverRows(ctx context.Context) error {
	active, err := m.cfg.Store.Select(ctx, driver.Filter{Statuses: driver.ActiveStatuses()})
	if err != nil {
		return fmt.Errorf("select active rows: %w", err)
	}
	unknown := map[string]int{}
	for _, j := range active {
		if m.byName[j.Backend] == nil {
			unknown[j.Backend]++
		}
	}
	if len(unknown) > 0 {
		names := slices.Sorted(maps.Keys(unknown))
		return fmt.Errorf("the table has active jobs on back-ends that are not configured: %q (%v rows); add them with --backend NAME=URL", names, unknown)
	}
	listings := map[string]map[string]string{} // back-end -> tag -> job id
	for _, j := range active {
		if j.Status != driver.QueuedForStart || !m.orphan(j, m.launching) || !m.stillIs(ctx, j, false) {
			continue // the selection is stale once a launch ended since
		}
		b := m.byName[j.Backend]
		set := driver.Values{driver.ColUpdatedAt: m.now(), driver.ColWorker: m.cfg.Owner.ID()}
		switch {
		case j.ID != "":
			// Created, maybe started: the tracker starts it if it is still created.
			set[driver.ColStatus] = driver.Created
		case j.Tag == "":
			set[driver.ColStatus], set[driver.ColBackend] = driver.NotStarted, nil
		default:
			tags, ok := listings[b.Name]
			if !ok {
				if tags, err = m.listTags(ctx, b); err != nil {
					// Its rows wait: the next cycle asks again.
					m.log.WarnContext(ctx, "cannot look for jobs created before a stop", "backend", b.Name, "err", err)
				}
				listings[b.Name] = tags // nil after an error
			}
			if tags == nil {
				continue
			}
			if id := tags[j.Tag]; id != "" {
				m.log.InfoContext(ctx, "adopting job created before a stop", "row", j.Key, "job_id", id, "backend", b.Name)
				set[driver.ColID], set[driver.ColStatus] = id, driver.Created
				m.stats.add("job adopted", 1)
			} else {
				set[driver.ColStatus], set[driver.ColBackend] = driver.NotStarted, nil
			}
		}
		err := m.cfg.Store.Update(ctx, driver.Update{Key: j.Key, From: []driver.Status{driver.QueuedForStart}, Set: set})
		if err != nil && !errors.Is(err, driver.ErrConflict) {
			return fmt.Errorf("recover row %d: %w", j.Key, err)
		}
	}
	return nil
}

// listTags lists a back-end's jobs and maps their tags to job ids.
func (m *Manager) listTags(ctx context.Context, b *Backend) (map[string]string, error) {
	jobs, err := b.Client.ListJobs(ctx, m.cfg.ListPageSize)
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
	err := m.cfg.Store.Update(ctx, driver.Update{Key: key, From: []driver.Status{from}, Set: set})
	if err != nil {
		log.WarnContext(ctx, "update row", "row", key, "err", err)
		return false
	}
	return true
}

// goTracked runs f in the background for row key, recorded in set (launching
// or handling) while it runs, unless f already runs for that row.
func (m *Manager) goTracked(set map[int64]bool, key int64, f func()) bool {
	m.mu.Lock()
	if set[key] {
		m.mu.Unlock()
		return false
	}
	set[key] = true
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

func (m *Manager) inFlight(set map[int64]bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(set)
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

func (s *stats) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}
