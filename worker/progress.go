package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openeo-batch/worker/driver"
)

// Progress is a snapshot of a run, taken after each cycle of the manager
// (see Config.OnProgress and Manager.Progress). Counts are rows of the
// table, read in the cycle; times are from package time.
type Progress struct {
	// Time is when the snapshot was taken; StartedAt when Run started.
	Time, StartedAt time.Time
	// Polled says this cycle asked the back-ends for their jobs' statuses
	// (a tracking cycle, every Config.PollInterval).
	Polled bool
	// Total is the number of rows; ByStatus counts them per status.
	Total    int
	ByStatus map[driver.Status]int
	// Backends has one entry per configured back-end, in Config order.
	Backends []BackendProgress
	// Done is the number of rows in a final status (finished, error,
	// canceled, start_failed, skipped); DoneThisRun those that reached it
	// since Run started.
	Done, DoneThisRun int
	// Rate is DoneThisRun per minute of the run so far.
	Rate float64
	// ETA is the time left at Rate for the rows not yet done (those a
	// limit leaves not_started excluded); 0 when unknown (nothing done yet).
	ETA time.Duration
	// NextPoll is when the next tracking cycle is due.
	NextPoll time.Time
	// Events are the last notable events of the run, oldest first: a job
	// failed, a start failed, a back-end paused or stopped and why, a
	// download failed, a limit reached (at most MaxProgressEvents).
	Events []ProgressEvent
	// Launched is the number of jobs this run started; MaxJobs is
	// Config.MaxJobs (0: no cap).
	Launched, MaxJobs int
	// CostsThisRun sums the costs the back-ends reported for the jobs that
	// ended during this run (billing currency, credits).
	CostsThisRun float64
	// Costs is the budget's state when Config.MaxCosts is set, else nil.
	Costs *CostsProgress
	// Halted says why the run launches no more jobs (Config.MaxCosts or
	// MaxJobs reached), "" while it launches.
	Halted string
}

// CostsProgress is where a run stands against Config.MaxCosts, in the
// back-ends' billing currency (credits).
type CostsProgress struct {
	Max float64
	// Recorded is the costs in the table (costs and previous_costs of the
	// rows that are not active); Active those counted for active jobs
	// (reported costs, or estimates of the jobs this run started).
	Recorded, Active float64
	ActiveJobs       int
}

// BackendProgress is one back-end's part of a Progress.
type BackendProgress struct {
	Name string
	// ByStatus counts the rows assigned to the back-end per status; Total
	// is their sum.
	ByStatus map[driver.Status]int
	Total    int
	// Paused says why the back-end takes no new job now ("" when it does):
	// stopped for the run (credentials refused, out of credit), backing off
	// until PausedUntil, or unreachable (circuit breaker open).
	Paused      string
	PausedUntil time.Time
}

// ProgressEvent is a notable event of a run.
type ProgressEvent struct {
	Time    time.Time
	Level   slog.Level
	Backend string // "" when not about one back-end
	Row     int64  // 0 when not about one row
	Message string
}

func (e ProgressEvent) String() string {
	var b strings.Builder
	if e.Backend != "" {
		b.WriteString(e.Backend + " ")
	}
	if e.Row != 0 {
		fmt.Fprintf(&b, "row %d ", e.Row)
	}
	b.WriteString(e.Message)
	return b.String()
}

// MaxProgressEvents is how many events a Progress keeps.
const MaxProgressEvents = 8

// progress keeps what a snapshot needs between cycles.
type progress struct {
	mu        sync.Mutex
	startedAt time.Time
	doneAt0   int // rows done when the run started; -1 before the first count
	lastPoll  time.Time
	events    []ProgressEvent
	costs     float64 // CostsThisRun
	last      Progress
}

func newProgress() *progress { return &progress{doneAt0: -1} }

func (p *progress) note(ev ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	if n := len(p.events) - MaxProgressEvents; n > 0 {
		p.events = slices.Delete(p.events, 0, n)
	}
}

// ended notes the costs a job that ended reported (see apply).
func (m *Manager) ended(costs any) {
	if c, ok := costs.(float64); ok {
		m.prog.mu.Lock()
		m.prog.costs += c
		m.prog.last.CostsThisRun = m.prog.costs
		m.prog.mu.Unlock()
	}
}

// Progress returns the snapshot of the last cycle (the zero Progress
// before the first).
func (m *Manager) Progress() Progress {
	m.prog.mu.Lock()
	defer m.prog.mu.Unlock()
	return m.prog.last
}

// event notes a notable event that is not logged at warning level (those
// are noted by the logger, see eventHandler).
func (m *Manager) event(backend string, row int64, msg string) {
	m.prog.note(ProgressEvent{Time: time.Now(), Level: slog.LevelInfo, Backend: backend, Row: row, Message: msg})
}

// reportProgress takes the cycle's snapshot from counts, hands it to
// Config.OnProgress, and on a tracking cycle logs it as one line.
func (m *Manager) reportProgress(ctx context.Context, counts []driver.Count, polled bool) {
	now := time.Now()
	pr := m.prog
	p := Progress{Time: now, Polled: polled, ByStatus: map[driver.Status]int{}}
	idx := map[string]int{}
	for i, b := range m.backends {
		idx[b.Name] = i
		bp := BackendProgress{Name: b.Name, ByStatus: map[driver.Status]int{}}
		g := m.gates[b.Name]
		g.mu.Lock()
		switch {
		case g.stopped != "":
			bp.Paused = "stopped for this run: " + g.stopped
		case now.Before(g.until):
			bp.Paused, bp.PausedUntil = "backing off", g.until
		}
		g.mu.Unlock()
		if bp.Paused == "" {
			h := m.health[b.Name]
			h.mu.Lock()
			state, cause, client := h.state, h.cause, h.client
			h.mu.Unlock()
			switch {
			case state == unusableNow && cause != nil:
				bp.Paused = "unusable, checked again shortly: " + cause.Error()
			case state == unusableNow || client == nil:
				bp.Paused = "not connected yet"
			case !client.Available():
				bp.Paused = "unreachable: failing requests, tried again shortly"
			}
		}
		p.Backends = append(p.Backends, bp)
	}
	for _, c := range counts {
		p.Total += c.N
		p.ByStatus[c.Status] += c.N
		if c.Status.Final() {
			p.Done += c.N
		}
		if i, ok := idx[c.Backend]; ok {
			p.Backends[i].ByStatus[c.Status] += c.N
			p.Backends[i].Total += c.N
		}
	}
	m.limitsProgress(&p)
	pr.mu.Lock()
	if pr.doneAt0 < 0 {
		pr.doneAt0, pr.startedAt = p.Done, now
	}
	if polled {
		pr.lastPoll = now
	}
	p.StartedAt = pr.startedAt
	p.NextPoll = pr.lastPoll.Add(m.cfg.PollInterval)
	p.DoneThisRun = max(0, p.Done-pr.doneAt0)
	p.Events = slices.Clone(pr.events)
	p.CostsThisRun = pr.costs
	pr.mu.Unlock()
	if elapsed := now.Sub(p.StartedAt); elapsed > 0 && p.DoneThisRun > 0 {
		p.Rate = float64(p.DoneThisRun) / elapsed.Minutes()
		left := p.Total - p.Done
		if p.Halted != "" {
			left -= p.ByStatus[driver.NotStarted]
		}
		p.ETA = time.Duration(float64(left) / p.Rate * float64(time.Minute)).Round(time.Second)
	}
	pr.mu.Lock()
	pr.last = p
	pr.mu.Unlock()
	if polled {
		m.log.InfoContext(ctx, "progress", p.LogAttrs()...)
	}
	if m.cfg.OnProgress != nil {
		m.cfg.OnProgress(p)
	}
}

// LogAttrs renders the snapshot as slog attributes: the one line per
// tracking cycle a run logs ("progress"). Counts per status, then one
// group per back-end, then rate, ETA, next poll and the limits.
func (p Progress) LogAttrs() []any {
	attrs := []any{"done", p.Done, "total", p.Total}
	for _, s := range driver.Statuses() {
		if n := p.ByStatus[s]; n > 0 {
			attrs = append(attrs, string(s), n)
		}
	}
	for _, b := range p.Backends {
		g := []any{"rows", b.Total}
		for _, s := range driver.Statuses() {
			if n := b.ByStatus[s]; n > 0 {
				g = append(g, string(s), n)
			}
		}
		if b.Paused != "" {
			g = append(g, "paused", b.Paused)
		}
		attrs = append(attrs, slog.Group("backend_"+b.Name, g...))
	}
	attrs = append(attrs, "rate_per_min", fmt.Sprintf("%.2f", p.Rate))
	if p.ETA > 0 {
		attrs = append(attrs, "eta", p.ETA)
	}
	attrs = append(attrs, "next_poll", p.NextPoll.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	if p.Costs != nil {
		attrs = append(attrs, "costs", p.Costs.Recorded+p.Costs.Active, "max_costs", p.Costs.Max)
	}
	if p.MaxJobs > 0 {
		attrs = append(attrs, "launched", p.Launched, "max_jobs", p.MaxJobs)
	}
	if p.Halted != "" {
		attrs = append(attrs, "halted", p.Halted)
	}
	return attrs
}

// eventHandler passes log records on to the configured handler and notes
// those at warning level and above as progress events.
type eventHandler struct {
	inner slog.Handler
	prog  *progress
	attrs []slog.Attr
}

func (h *eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		ev := ProgressEvent{Time: r.Time, Level: r.Level, Message: r.Message}
		var errText string
		see := func(a slog.Attr) bool {
			switch a.Key {
			case "backend":
				ev.Backend = a.Value.String()
			case "row":
				if a.Value.Kind() == slog.KindInt64 {
					ev.Row = a.Value.Int64()
				}
			case "err", "reason":
				errText = a.Value.String()
			}
			return true
		}
		for _, a := range h.attrs {
			see(a)
		}
		r.Attrs(see)
		if errText != "" {
			ev.Message += ": " + errText
		}
		h.prog.note(ev)
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &eventHandler{inner: h.inner.WithAttrs(as), prog: h.prog, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{inner: h.inner.WithGroup(name), prog: h.prog, attrs: h.attrs}
}
