package remote

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The learner in isolation, in virtual time: the slow start paces, a 429
// sets the rate to what the back-end took (less a margin) and says so at
// debug level, and the pace and the per-second window then hold.
func TestRateLearner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		l := newRateLearner(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		ctx := context.Background()
		start := time.Now()
		for range 25 { // 25 sent; the back-end takes 20 a second
			if err := l.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			l.answered()
		}
		if d := time.Since(start); d <= 0 || d >= time.Second {
			t.Fatalf("slow start: 25 requests in %v, want paced but within a second", d)
		}
		for range 5 {
			l.tooMany(time.Second) // the last 5 refused
		}
		if r := l.current(); r != 20*learnMargin {
			t.Errorf("learned %v requests a second, want %v", r, 20*learnMargin)
		}
		if !strings.Contains(logs.String(), "back-end answered 429: slowing down") || !strings.Contains(logs.String(), "level=DEBUG") {
			t.Errorf("no debug line for the slowdown:\n%s", logs.String())
		}
		// From now on: never more than 20 in any second.
		var sent []time.Time
		for range 60 {
			if err := l.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, time.Now())
			l.answered()
		}
		for i := 20; i < len(sent); i++ {
			if sent[i].Sub(sent[i-20]) < time.Second {
				t.Fatalf("requests %d and %d sent %v apart: 21 in one second", i-20, i, sent[i].Sub(sent[i-20]))
			}
		}
		if d := sent[59].Sub(sent[0]); d > 59*time.Second/19 {
			t.Errorf("60 requests took %v: slower than the learned rate", d)
		}
	})
}
