package remote

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"
)

// The rate a back-end allows, learned from its 429 answers when the Policy
// gives none (RequestsPerSecond 0).
//
// The client starts paced (TCP's slow start): learnStart requests a
// second, and each answer that is not a 429 raises the rate by
// learnGrowth, so a back-end that never complains gets requests as fast
// as the manager makes them after a fraction of a second (the rate passes
// learnUnlimited after 48 answers, and pacing stops). Starting paced keeps
// the first 429s few: a burst of concurrent requests would all be refused
// together; paced, only those in flight when the first 429 comes back are.
//
// On a 429 the client counts the requests it sent in the second up to the
// answer, less those refused: the back-end took that many, so that is the
// estimate of its rate. From then on the client keeps to learnMargin of
// it, spaced evenly, and to no more requests in any second than that rate
// (so the back-end's window drains before the next request leaves). The
// refused request itself waits for its Retry-After (the retry policy). A
// 429 at the learned rate lowers it again, to the new estimate or by
// learnDecrease, whichever is lower (multiplicative decrease); each
// learnProbeEvery without a 429 raises it by learnIncrease, so a limit
// that was lowered for a while is found again (additive increase).
//
// failsafe-go's adaptivelimiter does not fit: it limits concurrency from
// the trend of latencies, and a 429 comes back fast; its ratelimiter has a
// fixed rate, which this type changes.
const (
	learnStart      = 100.0 // requests per second
	learnGrowth     = 1.05
	learnUnlimited  = 1000.0 // requests per second
	learnMargin     = 0.99
	learnDecrease   = 0.9
	learnIncrease   = 0.05
	learnProbeEvery = 20 * time.Second
)

// rateLearner paces the requests of one back-end at a learned rate. Safe
// for concurrent use.
type rateLearner struct {
	log  *slog.Logger
	turn chan struct{} // held by the request whose turn it is to leave

	mu       sync.Mutex
	rate     float64     // requests per second; 0: no limit
	learned  bool        // rate comes from a 429 (else: slow start)
	next     time.Time   // earliest send of the next request
	sent     []time.Time // sends of the last second, in order
	refused  []time.Time // answers 429 of the last second, in order
	lastCut  time.Time   // when the rate was last lowered
	lastRise time.Time   // when it was last raised (or lowered)
}

func newRateLearner(log *slog.Logger) *rateLearner {
	return &rateLearner{log: log, rate: learnStart, lastRise: time.Now(), turn: make(chan struct{}, 1)}
}

// acquire waits until a request may be sent, and counts it as sent.
// Requests leave in the order they came; the wait is decided again when it
// ends, so a rate learned meanwhile applies to the requests still waiting.
func (l *rateLearner) acquire(ctx context.Context) error {
	// One waiter at a time, in the order they came (senders blocked on a
	// channel are served first in, first out).
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		l.mu.Lock()
		now := time.Now()
		l.trimLocked(now)
		wait := l.waitLocked(now)
		if wait <= 0 {
			l.sent = append(l.sent, now)
			if l.rate > 0 {
				l.next = now.Add(time.Duration(float64(time.Second) / l.rate))
			}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitLocked returns how long a request must wait from now (<= 0: none).
func (l *rateLearner) waitLocked(now time.Time) time.Duration {
	if l.rate == 0 {
		return 0
	}
	wait := l.next.Sub(now)
	if !l.learned {
		return wait
	}
	if now.Sub(l.lastRise) >= learnProbeEvery {
		l.setRateLocked(l.rate*(1+learnIncrease), "no answer 429 for a while: trying a higher rate")
	}
	// As many sent in the last second as the rate allows: wait until the
	// oldest that counts leaves it. ceil(rate) is at most the estimate the
	// rate came from.
	if perSecond := max(int(math.Ceil(l.rate)), 1); len(l.sent) >= perSecond {
		wait = max(wait, l.sent[len(l.sent)-perSecond].Add(time.Second).Sub(now))
	}
	return wait
}

// trimLocked forgets the sends before the second up to now.
func (l *rateLearner) trimLocked(now time.Time) {
	i := 0
	for i < len(l.sent) && !l.sent[i].After(now.Add(-time.Second)) {
		i++
	}
	l.sent = l.sent[i:]
}

// tooMany learns from a 429 answer that arrived now.
func (l *rateLearner) tooMany(retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.trimLocked(now)
	l.refused = append(l.refused, now)
	i := 0
	for i < len(l.refused) && !l.refused[i].After(now.Add(-time.Second)) {
		i++
	}
	l.refused = l.refused[i:]
	// The back-end took what was sent in the last second less what it
	// refused: that much it allows.
	sent := len(l.sent)
	estimate := float64(max(sent-len(l.refused), 1))
	rate := estimate * learnMargin
	switch {
	case now.Sub(l.lastCut) < time.Second:
		// Another answer to requests sent before the last cut: it only
		// sharpens the estimate.
		if rate >= l.rate {
			return
		}
	case l.rate > 0:
		rate = min(rate, l.rate*learnDecrease)
		l.lastCut = now
	default:
		l.lastCut = now
	}
	l.learned = true
	l.setRateLocked(max(rate, 0.1), "back-end answered 429: slowing down",
		"sent_last_second", sent, "refused_last_second", len(l.refused), "retry_after", retryAfter)
}

// answered counts an answer that is not a 429: in the slow start, it
// raises the rate.
func (l *rateLearner) answered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.learned || l.rate == 0 {
		return
	}
	l.rate *= learnGrowth
	if l.rate >= learnUnlimited {
		l.rate = 0
		l.log.Debug("no answer 429 in the slow start: requests no longer paced")
	}
}

func (l *rateLearner) setRateLocked(rate float64, msg string, args ...any) {
	l.log.Debug(msg, append([]any{"requests_per_second", math.Round(rate*100) / 100,
		"before", math.Round(l.rate*100) / 100}, args...)...)
	l.rate = rate
	l.lastRise = time.Now()
}

// current returns the learned rate (0: none).
func (l *rateLearner) current() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}
