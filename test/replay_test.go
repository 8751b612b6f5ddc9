package test

import (
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// seedFlag replays the random choices of a kill test (when to kill):
//
//	go test ./test -run 'TestKillAndResume/jobs.csv' -seed 1234
//
// WORKER_TEST_SEED=1234 does the same where flags are awkward (make test).
var seedFlag = flag.Uint64("seed", 0, "seed for the random kill points of the kill tests (0: a fresh one, printed)")

// testRand returns a random source for t, from -seed, WORKER_TEST_SEED or
// a fresh seed, and logs the seed with the command that replays the test.
// Replaying repeats the test's choices, not the machine's timing.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("WORKER_TEST_SEED"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("WORKER_TEST_SEED=%q: %v", s, err)
			}
			seed = v
		}
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d; replay: go test ./test -run '^%s$' -seed %d", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// thawClock is a fake back-end's clock that stands still until Thaw, then
// runs with real time: jobs stay in the state they reached (queued,
// running) for as long as the test needs them there.
type thawClock struct {
	mu       sync.Mutex
	start    time.Time
	thawedAt time.Time // zero while frozen
}

func newThawClock() *thawClock { return &thawClock{start: time.Now()} }

// Now returns the start time while frozen, and start plus the real time
// since Thaw after.
func (c *thawClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.thawedAt.IsZero() {
		return c.start
	}
	return c.start.Add(time.Since(c.thawedAt))
}

// Thaw lets the clock run.
func (c *thawClock) Thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.thawedAt.IsZero() {
		c.thawedAt = time.Now()
	}
}

// waitUntil polls cond until it holds, or fails the test when done (a
// process that was to reach the state) ends first.
func waitUntil(t *testing.T, what string, done <-chan error, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("the worker ended (%v) before %s", err, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
