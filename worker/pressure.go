package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// pressure is what a back-end's answers say about launching more jobs.
type pressure int

const (
	failed    pressure = iota // an ordinary failure: spend an attempt
	transient                 // the back-end busy or unreachable for a moment: spend nothing
	slowDown                  // rate limited or at its job limit: wait, spend nothing
	unusable                  // out of credit or credentials refused: stop launching there
)

// classify reads a create or start error as back-pressure or failure.
func classify(err error) pressure {
	var apiErr *remote.APIError
	switch {
	case errors.Is(err, remote.ErrPaymentRequired), refusedCredentials(err):
		return unusable
	case errors.As(err, &apiErr) && (apiErr.StatusCode == 429 || apiErr.Code == "ConcurrentJobLimit"):
		return slowDown
	case errors.As(err, &apiErr) && (apiErr.StatusCode == 502 || apiErr.StatusCode == 503 || apiErr.StatusCode == 504):
		// Overloaded, or a gateway cut off from it: the back-end's state,
		// not the job's. A 500 may be the job's doing, and spends an attempt.
		return transient
	case errors.Is(err, remote.ErrUnavailable):
		return slowDown
	case remote.ConnectionFailed(err):
		// No connection: the back-end's state, not the job's.
		return transient
	}
	return failed
}

// refusedCredentials reports whether err is the back-end refusing the
// account, not the job: a 401, or a 403 about the token or credentials.
// The client has already renewed the token once by then. Burning each
// row's attempts on it would leave every row start_failed.
func refusedCredentials(err error) bool {
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch {
	case apiErr.StatusCode == http.StatusUnauthorized:
		return true
	case apiErr.StatusCode == http.StatusForbidden:
		switch apiErr.Code {
		case "", "TokenInvalid", "CredentialsInvalid", "AuthenticationSchemeInvalid", "AuthenticationRequired":
			return true
		}
	}
	return false
}

// gate decides when a back-end may take new jobs.
type gate struct {
	mu       sync.Mutex
	until    time.Time // no launches before
	streak   int       // pauses in a row: each doubles the next
	failures int       // ordinary failures in a row
	stopped  string    // why launching stopped for this run; "" while going
	min, max time.Duration
}

// open reports whether the back-end may take a job now.
func (g *gate) open(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped == "" && !now.Before(g.until)
}

// backOff closes the gate for a while, longer after each refusal in a row.
func (g *gate) backOff(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.min << min(g.streak, 16)
	if d > g.max || d <= 0 {
		d = g.max
	}
	g.streak++
	g.until = now.Add(d)
	return d
}

func (g *gate) ok() {
	g.mu.Lock()
	g.streak, g.failures = 0, 0
	g.mu.Unlock()
}

// fail counts an ordinary failure and returns the failures in a row.
func (g *gate) fail() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures++
	return g.failures
}

func (g *gate) stop(reason string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := g.stopped == ""
	if first {
		g.stopped = reason
	}
	return first
}

func (g *gate) stoppedBecause() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// react applies what err says about the back-end to its gate, logs it, and
// reports the kind of pressure.
func (m *Manager) react(ctx context.Context, b *Backend, err error) pressure {
	g := m.gates[b.Name]
	p := classify(err)
	if remote.ConnectionFailed(err) && ctx.Err() == nil {
		// Unreachable: pause it until its loop finds it back.
		m.markUnusable(ctx, b, err, m.cfg.MinBackoff)
	}
	switch p {
	case unusable:
		if g.stop(err.Error()) {
			msg := "back-end out of credit: no more jobs go there in this run"
			if refusedCredentials(err) {
				msg = "back-end refuses our credentials: no more jobs go there in this run; renew the credentials (worker login URL, or the token or password in the environment) and run again"
			}
			m.log.ErrorContext(ctx, msg, "backend", b.Name, "err", err)
		}
	case slowDown:
		d := g.backOff(time.Now())
		m.log.WarnContext(ctx, "back-end asks to slow down; waiting before the next job", "backend", b.Name, "wait", d, "err", err)
	case failed, transient:
		// One failure says little about the back-end; several in a row do.
		// (A failed row spends an attempt, a transient one does not.)
		if g.fail() >= failuresBeforePause {
			d := g.backOff(time.Now())
			m.log.WarnContext(ctx, "back-end failed several jobs in a row; waiting before the next", "backend", b.Name, "wait", d, "err", err)
		}
	}
	return p
}

// failuresBeforePause is how many ordinary failures in a row pause a back-end.
const failuresBeforePause = 3

// errNoBackend ends a run that has rows left but no back-end to take them:
// each back-end a row left may go to (any, or the one the user gave it
// to) stopped taking jobs, or failed its checks more than once. The error
// names each such back-end with its URL and why. counts are the table's.
func (m *Manager) errNoBackend(counts []driver.Count) error {
	left := 0
	waitFor := map[string]bool{} // back-ends the rows left wait for
	for _, c := range counts {
		if c.Status != driver.NotStarted || c.N == 0 {
			continue
		}
		if c.Backend == "" {
			for _, b := range m.backends {
				waitFor[b.Name] = true
			}
		} else if m.byName[c.Backend] != nil {
			waitFor[c.Backend] = true
		} else {
			continue // given to a back-end that is not configured: left as it is
		}
		left += c.N
	}
	var reasons []error
	for _, b := range m.backends {
		if !waitFor[b.Name] {
			continue
		}
		r := m.unusableReason(b)
		if r == "" {
			return nil // it still takes jobs, or may soon
		}
		reasons = append(reasons, errors.New(r))
	}
	if len(reasons) == 0 {
		return nil
	}
	return fmt.Errorf("%s left not_started: no back-end is usable for them: %w", rowsN(left), errors.Join(reasons...))
}
