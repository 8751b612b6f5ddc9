package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/openeo-batch/worker/remote"
)

// Each back-end goes at its own cadence: one goroutine per back-end
// (backendLoop) checks that it can be used, recovers its half-done rows and
// tracks its jobs once per poll interval, whatever the other back-ends do.
// A back-end that refuses connections, hangs or refuses the credentials is
// paused and checked again in the background, with backoff, while the
// others go on; its rows wait. The main loop (Run) launches jobs and runs
// handlers, only on back-ends known to be usable.

// warnEvery bounds how often a back-end that stays unusable is logged at
// warn level; the checks in between are logged at debug level.
const warnEvery = time.Minute

// minTrackBudget is the least time one tracking cycle's requests get,
// however short the poll interval.
const minTrackBudget = 10 * time.Second

// describeTries bounds the tracking cycles that wait for the full
// description of a job that reached a final status (its usage and costs)
// before its status is recorded without them.
const describeTries = 3

type healthState int

const (
	unchecked healthState = iota // not checked yet
	usable
	unusableNow // failed its last check: paused, checked again later
)

// health is what a manager knows of one back-end's reachability.
type health struct {
	mu        sync.Mutex
	client    *remote.Client // nil until Backend.Connect succeeded
	state     healthState
	cause     error // why it is unusable (the last failure that said why)
	failures  int   // failed checks in a row
	warned    time.Time
	reconnect bool // the credentials were refused: Backend.Connect again
	// nextCheck is when an unusable back-end is checked again.
	nextCheck time.Time
	// partWarned is when failing requests of a back-end that still
	// answers were last logged at warn level.
	partWarned time.Time
}

// warnDue reports whether a warning about a back-end that still answers
// but fails some requests is due: the first, then one per warnEvery.
func (h *health) warnDue(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.partWarned.IsZero() && now.Sub(h.partWarned) < warnEvery {
		return false
	}
	h.partWarned = now
	return true
}

func (h *health) isUsable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == usable
}

// conn returns the client of b: nil while a back-end given only with
// Backend.Connect has not connected yet.
func (m *Manager) conn(b *Backend) *remote.Client {
	h := m.health[b.Name]
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.client
}

// backendURL names b in logs and errors.
func (m *Manager) backendURL(b *Backend) string {
	if c := m.conn(b); c != nil {
		return c.URL()
	}
	return b.URL
}

// backendLoop runs b's cycles until ctx ends. It returns only errors of the
// store; the back-end's own failures pause it.
func (m *Manager) backendLoop(ctx context.Context, b *Backend) error {
	h := m.health[b.Name]
	backoff := m.cfg.MinBackoff
	for ctx.Err() == nil {
		if !h.isUsable() {
			if err := m.check(ctx, b); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.markUnusable(ctx, b, err, backoff)
				m.signal() // the run may have no usable back-end left
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, m.cfg.MaxBackoff)
				continue
			}
			backoff = m.cfg.MinBackoff
			m.signal()
		}
		start := time.Now()
		changes := m.changes.Load()
		if err := m.backendCycle(ctx, b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if m.changes.Load() != changes || !h.isUsable() {
			m.signal() // jobs ended or slots freed: the main loop acts now, not at its next poll
		}
		wait := m.cfg.PollInterval - time.Since(start)
		if !h.isUsable() {
			// Paused by this cycle: checked again after the wait.
			h.mu.Lock()
			h.nextCheck = time.Now().Add(max(wait, 0))
			h.mu.Unlock()
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
	return nil
}

// backendCycle recovers b's half-done rows and tracks its jobs.
func (m *Manager) backendCycle(ctx context.Context, b *Backend) error {
	if err := m.recoverRows(ctx, b); err != nil {
		return err
	}
	return m.trackBackend(ctx, b)
}

// sleep waits d or until ctx ends, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// requestContext is the context of a cycle's requests to a back-end: sent
// once (a failure is asked again next cycle, not waited for with backoff)
// and bounded by the poll interval (at least minTrackBudget).
func (m *Manager) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(remote.WithoutRetries(ctx), max(m.cfg.PollInterval, minTrackBudget))
}

// check connects to b if it has to (Backend.Connect) and asks it for one
// job, which proves it answers and takes our credentials. On success b is
// usable.
func (m *Manager) check(ctx context.Context, b *Backend) error {
	h := m.health[b.Name]
	h.mu.Lock()
	c, again, n := h.client, h.reconnect, h.failures
	h.mu.Unlock()
	if n > 0 {
		m.log.DebugContext(ctx, "checking back-end again", "backend", b.Name, "url", m.backendURL(b), "attempt", n+1)
	}
	rctx, cancel := m.requestContext(ctx)
	defer cancel()
	if b.Connect != nil && (c == nil || again) {
		nc, err := b.Connect(rctx)
		if err != nil {
			return err
		}
		h.mu.Lock()
		h.client, h.reconnect = nc, false
		h.mu.Unlock()
		c = nc
	}
	if err := c.CheckAccess(rctx); err != nil {
		return err
	}
	h.mu.Lock()
	was := h.state
	h.state, h.failures, h.cause = usable, 0, nil
	h.mu.Unlock()
	if was == unusableNow {
		m.log.InfoContext(ctx, "back-end usable again", "backend", b.Name, "url", m.backendURL(b))
	}
	return nil
}

// markUnusable pauses b for what err says: its rows wait, the others go
// on. The first time, and then at most every warnEvery, it is logged at
// warn level with the URL and the cause; otherwise at debug level.
func (m *Manager) markUnusable(ctx context.Context, b *Backend, err error, retryIn time.Duration) {
	h := m.health[b.Name]
	now := time.Now()
	h.mu.Lock()
	// While the breaker is open the client sends nothing: its error says
	// nothing new about the back-end; the failure before it does.
	if !errors.Is(err, remote.ErrUnavailable) || h.cause == nil {
		h.cause = err
	}
	first := h.state != unusableNow
	h.state = unusableNow
	h.failures++
	h.nextCheck = now.Add(retryIn)
	if refusedCredentials(err) {
		h.reconnect = true
	}
	warn := first || now.Sub(h.warned) >= warnEvery
	if warn {
		h.warned = now
	}
	cause, n := h.cause, h.failures
	h.mu.Unlock()
	attrs := []any{"backend", b.Name, "url", m.backendURL(b), "cause", causeText(cause), "failures", n, "retry_in", retryIn}
	if warn {
		msg := "back-end unusable: its rows wait; checking it again in the background"
		if m.othersUsable(b) {
			msg = "back-end unusable: its rows wait, the other back-ends go on; checking it again in the background"
		}
		m.log.WarnContext(ctx, msg, attrs...)
	} else {
		m.log.DebugContext(ctx, "back-end still unusable", attrs...)
	}
}

// othersUsable reports whether a back-end other than b is usable.
func (m *Manager) othersUsable(b *Backend) bool {
	for _, o := range m.backends {
		if o != b && m.health[o.Name].isUsable() {
			return true
		}
	}
	return false
}

// unreachable reports whether err says the back-end as a whole cannot be
// used now (no connection, no answer, breaker open, credentials refused),
// rather than something about one request.
func unreachable(err error) bool {
	return remote.ConnectionFailed(err) || errors.Is(err, remote.ErrUnavailable) || refusedCredentials(err)
}

// causeText is the cause of a back-end failure in a few words: the socket
// error of a failed connection ("connect: connection refused"), the answer
// of the back-end otherwise.
func causeText(err error) string {
	if err == nil {
		return "not checked yet"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time: " + err.Error()
	}
	return err.Error()
}

// unusableReason says why b cannot take rows, or "" while it may (it is
// usable, not checked yet, or failed a single check so far).
func (m *Manager) unusableReason(b *Backend) string {
	if r := m.gates[b.Name].stoppedBecause(); r != "" {
		return fmt.Sprintf("%s (%s): %s", b.Name, m.backendURL(b), r)
	}
	h := m.health[b.Name]
	h.mu.Lock()
	state, n, cause := h.state, h.failures, h.cause
	h.mu.Unlock()
	if state != unusableNow || n < 2 {
		return ""
	}
	return fmt.Sprintf("%s (%s): %s", b.Name, m.backendURL(b), causeText(cause))
}
