package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/openeo-batch/worker/remote"
)

// StartupTimeout bounds the first connection (capabilities and
// authentication) to one back-end at start-up: a back-end that accepts
// connections but does not answer within it is paused and connected again
// in the background (remote's own per-request timeout, 2 minutes, is meant
// for slow answers of a working back-end, not for a start-up check).
const StartupTimeout = 30 * time.Second

// StartupGrace is how long ConnectAll waits for the other back-ends once
// one has connected: a back-end slower than that does not hold up the
// rows of the others; its attempt goes on and the run takes its result.
const StartupGrace = time.Second

// ErrStillConnecting says that a back-end's start-up connection had not
// ended when ConnectAll returned: the attempt goes on in the background
// and the manager's first check of the back-end takes its result.
var ErrStillConnecting = errors.New("still connecting")

// ConnectAll connects, all at once, every back-end of bs that has Connect
// and no Client, each attempt sent once (no retries) and bounded by
// StartupTimeout. It returns when each has ended, or StartupGrace after
// the first one connected, or when ctx ends. The result has one error per
// back-end: nil for one connected (its Client is set, or it had one), the
// failure of one that could not connect, or ErrStillConnecting for one
// whose attempt goes on: its Connect is then wrapped so that the first
// call takes that attempt's result (waiting for it at most until the
// call's ctx ends) and later calls connect anew. A back-end slow to
// answer thus never holds up the others' rows.
//
// waiting, when not nil, is called once if no back-end has connected
// StartupGrace after the start while some are still connecting, with
// their names: the caller says what the run waits for.
func ConnectAll(ctx context.Context, bs []Backend, waiting func(names []string)) []error {
	errs := make([]error, len(bs))
	type result struct {
		i   int
		c   *remote.Client
		err error
	}
	results := make(chan result, len(bs))
	pending := 0
	attempts := make([]*attempt, len(bs))
	for i := range bs {
		if bs[i].Client != nil || bs[i].Connect == nil {
			continue
		}
		pending++
		a := &attempt{done: make(chan struct{})}
		attempts[i] = a
		connect := bs[i].Connect
		go func() {
			actx, cancel := context.WithTimeout(remote.WithoutRetries(ctx), StartupTimeout)
			defer cancel()
			a.c, a.err = connect(actx)
			if a.err != nil && actx.Err() != nil && ctx.Err() == nil {
				a.err = &noAnswerError{err: a.err, after: StartupTimeout}
			}
			close(a.done)
			results <- result{i, a.c, a.err}
		}()
	}
	var grace <-chan time.Time
	notice := time.NewTimer(StartupGrace)
	defer notice.Stop()
	for pending > 0 && ctx.Err() == nil {
		select {
		case <-notice.C:
			if grace == nil && waiting != nil {
				var names []string
				for i, a := range attempts {
					if a != nil {
						names = append(names, bs[i].Name)
					}
				}
				waiting(names)
			}
		case r := <-results:
			pending--
			attempts[r.i] = nil
			if r.err != nil {
				errs[r.i] = r.err
				continue
			}
			bs[r.i].Client = r.c
			if grace == nil {
				t := time.NewTimer(StartupGrace)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			pending = 0
		case <-ctx.Done():
		}
	}
	for i, a := range attempts {
		if a == nil {
			continue
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		errs[i] = ErrStillConnecting
		bs[i].Connect = a.handOver(bs[i].Connect)
	}
	return errs
}

// attempt is one start-up connection to a back-end, going on in the
// background.
type attempt struct {
	done  chan struct{} // closed when c and err are set
	c     *remote.Client
	err   error
	mu    sync.Mutex
	taken bool
}

// handOver returns a Connect that first takes a's result, then calls
// connect.
func (a *attempt) handOver(connect func(context.Context) (*remote.Client, error)) func(context.Context) (*remote.Client, error) {
	return func(ctx context.Context) (*remote.Client, error) {
		a.mu.Lock()
		taken := a.taken
		a.mu.Unlock()
		if taken {
			return connect(ctx)
		}
		select {
		case <-a.done:
			a.mu.Lock()
			a.taken = true
			a.mu.Unlock()
			return a.c, a.err
		case <-ctx.Done():
			return nil, &noAnswerError{err: ctx.Err(), waiting: true}
		}
	}
}

// noAnswerError says a back-end did not answer its start-up connection in
// time: it accepts connections (or the dial would have failed) but sends
// nothing.
type noAnswerError struct {
	err     error
	after   time.Duration // the attempt's bound
	waiting bool          // the attempt goes on
}

func (e *noAnswerError) Error() string {
	if e.waiting {
		return "no answer yet (the back-end accepts connections but does not answer; still waiting for its start-up connection): " + e.err.Error()
	}
	return "no answer within " + e.after.String() + " (the back-end accepts connections but does not answer): " + e.err.Error()
}

func (e *noAnswerError) Unwrap() error { return e.err }
