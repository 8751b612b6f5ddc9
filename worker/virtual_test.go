package worker_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeo-batch/worker/remote/remotetest"
)

// The worker tests run in virtual time: each wraps its body in
// synctest.Test, where package time (the manager's one clock, the remote
// client's retries and rate limits too) is a fake clock that jumps ahead
// whenever every goroutine of the test waits for time. A run of minutes
// takes the CPU time its requests need, and no timing depends on the load
// of the machine.
//
// The fake back-ends are real HTTP servers on 127.0.0.1, and a goroutine
// blocked on the network is not "durably blocked": time stands still while
// it waits. That is exactly right for a request in flight (it takes no
// virtual time), but the servers' own goroutines (Accept) and idle
// keep-alive connections would wait for ever and freeze the clock. Hence:
// the servers start outside the bubble (startServer), clients open a new
// connection per request (virtualClient), and the server tells the time
// the client stamped on the latest request (stampClock), the bubble's time.

// startServer starts a fake back-end outside any synctest bubble, so that
// its goroutines do not belong to the test's bubble, and closes it when
// the test ends. Without a Clock in opts the server follows clock.
func startServer(t interface{ Cleanup(func()) }, opts remotetest.Options, clock *stampClock) *remotetest.Server {
	if opts.Clock == nil {
		opts.Clock = clock
	}
	var srv *remotetest.Server
	outside(func() { srv = remotetest.NewServer(opts) })
	t.Cleanup(func() { outside(srv.Close) })
	return srv
}

// outside runs f on a goroutine that belongs to no bubble, and waits.
func outside(f func()) {
	outsideMu.Lock()
	defer outsideMu.Unlock()
	outsideCalls <- f
	<-outsideDone
}

var (
	outsideMu    sync.Mutex
	outsideCalls = make(chan func()) // made at init: in no bubble
	outsideDone  = make(chan struct{})
)

func init() {
	go func() {
		for f := range outsideCalls {
			f()
			outsideDone <- struct{}{}
		}
	}()
}

// stampClock is a fake back-end's clock in a test that runs in virtual
// time: the time its client stamped on the latest request. Virtual time
// stands still while a request is in flight, so that is the time now.
// Safe for concurrent use.
type stampClock struct{ ns atomic.Int64 }

// newStampClock returns a clock at the caller's time now.
func newStampClock() *stampClock {
	c := &stampClock{}
	c.stamp()
	return c
}

// Now returns the time of the latest stamp.
func (c *stampClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// stamp sets the clock to the caller's time now (virtual in a bubble).
func (c *stampClock) stamp() {
	now := time.Now().UnixNano()
	for {
		old := c.ns.Load()
		if now <= old || c.ns.CompareAndSwap(old, now) {
			return
		}
	}
}

// virtualClient returns an HTTP client for tests in virtual time: one
// connection per request (an idle connection's reader would block the
// bubble's clock), each request stamping clock.
func virtualClient(clock *stampClock) *http.Client {
	return &http.Client{Transport: stamper{clock, &http.Transport{DisableKeepAlives: true}}}
}

type stamper struct {
	clock *stampClock
	next  http.RoundTripper
}

func (s stamper) RoundTrip(r *http.Request) (*http.Response, error) {
	s.clock.stamp()
	return s.next.RoundTrip(r)
}
