package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// ErrLimitReached is matched (errors.Is) by the *LimitError Run returns
// when Config.MaxCosts or Config.MaxJobs stopped it launching jobs.
var ErrLimitReached = errors.New("launch limit reached")

// LimitError says that a run stopped launching jobs because of
// Config.MaxCosts or Config.MaxJobs, and how many rows it left
// not_started. The table is consistent; a later run with a higher limit
// (or none) runs the rows left.
type LimitError struct {
	// Limit is "max-costs" or "max-jobs".
	Limit string
	// Reason says what was reached, in a line.
	Reason string
	// NotStarted is the number of rows left not_started.
	NotStarted int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s; %s left not_started", e.Reason, rowsN(e.NotStarted))
}

// rowsN is "1 row" or "N rows".
func rowsN(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// Is makes errors.Is(err, ErrLimitReached) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimitReached }

// previousCostsColumn is the column in which `worker retry` keeps the
// costs of a row's earlier jobs: costs recorded in the table all the same.
const previousCostsColumn = "previous_costs"

// limits applies Config.MaxCosts and Config.MaxJobs.
type limits struct {
	maxCosts float64
	maxJobs  int

	mu       sync.Mutex
	started  int               // jobs this run started, or is starting
	recorded float64           // costs of the table's rows that are not active, and previous_costs
	active   map[int64]float64 // active rows: the larger of estimate and reported costs
	counted  int               // tracking cycles (stat track_statuses) when last counted, -1: never
	stopped  *LimitError       // why launching stopped; nil while it goes on
	estimate map[string]bool   // per back-end: whether it offers estimates (absent: not asked yet)
	maxEst   float64           // the largest estimate of this run; 0: none yet
	admitted map[int64]bool    // rows admit let start in this run
}

func newLimits(cfg Config) *limits {
	return &limits{maxCosts: cfg.MaxCosts, maxJobs: cfg.MaxJobs,
		active: map[int64]float64{}, estimate: map[string]bool{}, admitted: map[int64]bool{}, counted: -1}
}

// stop records why launching stopped, once, and reports whether this was
// the first reason.
func (l *limits) stopLocked(limit, reason string) bool {
	if l.stopped != nil {
		return false
	}
	l.stopped = &LimitError{Limit: limit, Reason: reason}
	return true
}

// halted returns why launching stopped, or nil.
func (l *limits) halted() *LimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped == nil {
		return nil
	}
	e := *l.stopped
	return &e
}

// costs returns the costs counted against MaxCosts: recorded in the
// table, and of the active jobs.
func (l *limits) costsLocked() (recorded, active float64) {
	for _, c := range l.active {
		active += c
	}
	return l.recorded, active
}

// countCosts reads the costs recorded in the table: every row's costs and
// previous_costs. An active row counts the larger of its reported costs
// and what this run reserved for it (its estimate).
func (m *Manager) countCosts(ctx context.Context, polls int) error {
	rows, err := m.cfg.Store.Select(ctx, driver.Filter{})
	if err != nil {
		return fmt.Errorf("count the costs in the table: %w", err)
	}
	l := m.lim
	l.mu.Lock()
	defer l.mu.Unlock()
	recorded := 0.0
	active := map[int64]float64{}
	for _, r := range rows {
		recorded += cellNumber(r.Data[previousCostsColumn])
		c := 0.0
		if r.Costs != nil {
			c = *r.Costs
		}
		if r.Status.Active() {
			active[r.Key] = max(c, l.active[r.Key])
			continue
		}
		recorded += c
	}
	l.recorded, l.active, l.counted = recorded, active, polls
	return nil
}

// cellNumber reads a number cell as the stores return it: float64, int64
// or, from a CSV table, text. Anything else counts 0.
func cellNumber(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err == nil {
			return f
		}
	}
	return 0
}

// mayLaunch reports whether launch may claim another row now: false
// once a limit stopped launching, or while the jobs being launched
// already take what MaxJobs leaves.
func (m *Manager) mayLaunch(ctx context.Context) bool {
	l := m.lim
	if l.maxCosts <= 0 && l.maxJobs <= 0 {
		return true
	}
	if l.maxCosts > 0 {
		// The table's costs change when a poll records a job's end: count
		// them again after each.
		polls := m.stats.get("track_statuses")
		l.mu.Lock()
		counted := l.counted
		l.mu.Unlock()
		if counted != polls {
			if err := m.countCosts(ctx, polls); err != nil {
				m.log.WarnContext(ctx, "cannot count costs; launching waits", "err", err)
				return false
			}
		}
	}
	inFlight := m.inFlight(m.launching)
	launching := m.launchingKeys()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped != nil {
		return false
	}
	if l.maxJobs > 0 {
		if l.started >= l.maxJobs {
			m.limitReachedLocked(ctx, "max-jobs", fmt.Sprintf("job cap of %d reached: this run started %d jobs", l.maxJobs, l.started))
			return false
		}
		if l.started+inFlight >= l.maxJobs {
			return false // the launches in flight may take what is left
		}
	}
	if l.maxCosts > 0 {
		rec, act := l.costsLocked()
		if rec+act >= l.maxCosts {
			m.limitReachedLocked(ctx, "max-costs", fmt.Sprintf("budget of %s credits reached: %s recorded in the table + %s for active jobs",
				fmtCosts(l.maxCosts), fmtCosts(rec), fmtCosts(act)))
			return false
		}
		// Jobs being created are not counted yet (admit counts them once
		// estimated): a new job is created only when they leave room for
		// it, each guessed at the largest estimate so far. Before the
		// first estimate one job at a time is created where one may come,
		// so that a budget without room creates no job to find it out.
		pending := 0
		for _, k := range launching {
			if !l.admitted[k] {
				pending++
			}
		}
		if pending > 0 {
			if l.maxEst == 0 && m.mayEstimateLocked() {
				return false
			}
			if rec+act+float64(pending+1)*l.maxEst > l.maxCosts {
				return false
			}
		}
	}
	return true
}

// mayEstimateLocked reports whether a back-end may offer estimates: it
// does, or was not asked yet.
func (m *Manager) mayEstimateLocked() bool {
	for _, b := range m.backends {
		if offers, known := m.lim.estimate[b.Name]; offers || !known {
			return true
		}
	}
	return false
}

// launchingKeys returns the rows being created or started.
func (m *Manager) launchingKeys() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.launching))
}

func fmtCosts(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// limitReachedLocked stops launching, logs why and notes it as an event.
func (m *Manager) limitReachedLocked(ctx context.Context, limit, reason string) {
	if m.lim.stopLocked(limit, reason) {
		m.log.WarnContext(ctx, "no more jobs are launched in this run: "+reason, "limit", limit)
	}
}

// admit is asked before a job is started: under MaxJobs and MaxCosts it
// reserves the job's place (and its estimate) and returns a function that
// gives them back should the start fail. When the job may not start, it
// deletes the job on the back-end, puts the row back to not_started and
// returns false.
func (m *Manager) admit(ctx context.Context, b *Backend, j driver.Job) (release func(), ok bool) {
	l := m.lim
	if l.maxCosts <= 0 && l.maxJobs <= 0 {
		return func() {}, true
	}
	var est *float64
	if l.maxCosts > 0 {
		est = m.estimate(ctx, b, j)
	}
	l.mu.Lock()
	refused := l.stopped != nil
	if !refused && l.maxJobs > 0 && l.started >= l.maxJobs {
		m.limitReachedLocked(ctx, "max-jobs", fmt.Sprintf("job cap of %d reached: this run started %d jobs", l.maxJobs, l.started))
		refused = true
	}
	if !refused && l.maxCosts > 0 {
		rec, act := l.costsLocked()
		act -= l.active[j.Key]
		switch {
		case est != nil && rec+act+*est > l.maxCosts:
			m.limitReachedLocked(ctx, "max-costs", fmt.Sprintf("budget of %s credits reached: %s recorded + %s for active jobs, and the next job is estimated at %s",
				fmtCosts(l.maxCosts), fmtCosts(rec), fmtCosts(act), fmtCosts(*est)))
			refused = true
		case est == nil && rec+act >= l.maxCosts:
			m.limitReachedLocked(ctx, "max-costs", fmt.Sprintf("budget of %s credits reached: %s recorded + %s for active jobs",
				fmtCosts(l.maxCosts), fmtCosts(rec), fmtCosts(act)))
			refused = true
		}
	}
	if !refused {
		l.started++
		admittedBefore := l.admitted[j.Key]
		l.admitted[j.Key] = true
		prev, had := l.active[j.Key]
		if est != nil {
			l.active[j.Key] = max(*est, prev)
		} else if !had {
			l.active[j.Key] = 0
		}
		l.mu.Unlock()
		return func() {
			l.mu.Lock()
			l.started--
			if !admittedBefore {
				delete(l.admitted, j.Key)
			}
			if had {
				l.active[j.Key] = prev
			} else {
				delete(l.active, j.Key)
			}
			l.mu.Unlock()
		}, true
	}
	l.mu.Unlock()
	// The job was created but never started: it costs nothing. Delete it
	// and leave the row to a later run.
	wctx := context.WithoutCancel(ctx)
	log := m.log.With("row", j.Key, "backend", b.Name, "job_id", j.ID)
	if err := m.conn(b).DeleteJob(wctx, j.ID); err != nil {
		log.WarnContext(ctx, "delete a job not started because of a limit", "err", err)
	}
	m.update(wctx, log, j.Key, j.Status, driver.Values{
		driver.ColStatus: driver.NotStarted, driver.ColBackend: j.Unclaimed(), driver.ColID: nil, driver.ColUpdatedAt: m.now(),
	})
	return nil, false
}

// estimate asks b what job j will cost, where b's capabilities list the
// estimate endpoint; nil when it does not say.
func (m *Manager) estimate(ctx context.Context, b *Backend, j driver.Job) *float64 {
	c := m.conn(b)
	if c == nil {
		return nil // not connected (yet): no job of b reaches here
	}
	l := m.lim
	l.mu.Lock()
	offers, known := l.estimate[b.Name]
	l.mu.Unlock()
	if !known {
		caps, err := c.Capabilities(ctx)
		if err != nil {
			m.log.DebugContext(ctx, "capabilities unreadable; no estimates asked", "backend", b.Name, "err", err)
			return nil // asked again for the next job
		}
		offers = caps.Supports("GET", remote.EstimatePath)
		l.mu.Lock()
		l.estimate[b.Name] = offers
		l.mu.Unlock()
	}
	if !offers {
		return nil
	}
	e, err := c.EstimateJob(ctx, j.ID)
	m.stats.add("job estimate", 1)
	if err != nil {
		m.log.DebugContext(ctx, "no estimate for job", "backend", b.Name, "row", j.Key, "job_id", j.ID, "err", err)
		return nil
	}
	if e.Costs != nil {
		l.mu.Lock()
		l.maxEst = max(l.maxEst, *e.Costs)
		l.mu.Unlock()
	}
	return e.Costs
}

// limitsProgress fills the limit part of a progress snapshot.
func (m *Manager) limitsProgress(p *Progress) {
	l := m.lim
	l.mu.Lock()
	defer l.mu.Unlock()
	p.Launched = l.started
	p.MaxJobs = l.maxJobs
	if l.maxCosts > 0 {
		rec, act := l.costsLocked()
		p.Costs = &CostsProgress{Max: l.maxCosts, Recorded: rec, Active: act, ActiveJobs: len(l.active)}
	}
	if l.stopped != nil {
		p.Halted = l.stopped.Reason
	}
}

// haltedWith reports whether a limit stopped launching with notStarted
// rows left, noting the number for Run's *LimitError.
func (m *Manager) haltedWith(notStarted int) bool {
	m.lim.mu.Lock()
	defer m.lim.mu.Unlock()
	if m.lim.stopped == nil {
		return false
	}
	m.lim.stopped.NotStarted = notStarted
	return true
}

// limitErr returns the *LimitError of a run that ended with rows left
// because of a limit, or nil.
func (m *Manager) limitErr() error {
	if e := m.lim.halted(); e != nil && e.NotStarted > 0 {
		return e
	}
	return nil
}

func (s *stats) get(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}
