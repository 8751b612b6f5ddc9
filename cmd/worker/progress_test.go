package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/worker"
)

// The block shows the head line, one line per back-end with its columns,
// the rows not started, the budget, why launching stopped and the last
// five events.
func TestRenderProgress(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := worker.Progress{
		StartedAt: t0, Time: t0.Add(90 * time.Second), Total: 10, Done: 4, DoneThisRun: 4, Rate: 2.5, ETA: 3 * time.Minute,
		NextPoll: t0.Add(100 * time.Second),
		ByStatus: map[driver.Status]int{driver.Finished: 3, driver.Error: 1, driver.Running: 2, driver.NotStarted: 4},
		Backends: []worker.BackendProgress{
			{Name: "vito", Total: 4, ByStatus: map[driver.Status]int{driver.Finished: 2, driver.Running: 2}},
			{Name: "cdse", Total: 2, ByStatus: map[driver.Status]int{driver.Finished: 1, driver.Error: 1},
				Paused: "backing off", PausedUntil: t0.Add(120 * time.Second)},
		},
		Costs:  &worker.CostsProgress{Max: 10, Recorded: 4.5, Active: 2, ActiveJobs: 2},
		Halted: "budget of 10 credits reached",
	}
	for i := range 7 {
		p.Events = append(p.Events, worker.ProgressEvent{Time: t0, Backend: "cdse", Row: int64(i + 1), Message: "job failed"})
	}
	got := renderProgress("worker run jobs.db", p, t0.Add(90*time.Second))
	for _, w := range []string{
		"worker run jobs.db: 4 of 10 rows done (finished 3, failed 1), 1m30s elapsed",
		"rate 2.5 rows/min, ETA 3m0s, next poll in 10s",
		"vito                    0        0        2        2        0        4",
		"cdse                    0        0        0        1        1        2  paused: backing off (30s left)",
		"not started: 4, skipped: 0",
		"budget: 6.5 of 10 credits (4.5 recorded, 2 for 2 active jobs)",
		"launching stopped: budget of 10 credits reached",
		"cdse row 7 job failed",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("block lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "row 2 job failed") {
		t.Errorf("more than the last five events:\n%s", got)
	}
}

// Off a terminal the display shows nothing and leaves the logs as they are.
func TestDisplayOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	d := newDisplay(&buf, "x", "text")
	if d.live() {
		t.Fatal("a buffer is no terminal")
	}
	h := slog.NewTextHandler(&buf, nil)
	if d.logHandler(h, slog.LevelWarn) != slog.Handler(h) {
		t.Error("off a terminal the log handler changed")
	}
	d.update(worker.Progress{})
	d.stop()
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}
