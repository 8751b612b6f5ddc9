package drivertest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
)

// BenchSizes are the table sizes Bench measures; BENCH_ROWS (comma-
// separated) overrides them.
var BenchSizes = []int{10_000, 100_000, 1_000_000}

// Bench measures a driver on tables of BenchSizes rows with a WKT geometry
// column, 1% of them running: Counts, Select100 (by status, in table
// order), Update10 (ten rows by key, with a precondition), Flush (one
// change, then driver.Flusher's rewrite, for stores that have one), Open (and
// close), the peak memory opening adds (open-peak-MB) and the resident
// memory an open store keeps (open-RSS-MB), Claim (one row) and Update1
// (one row by key, with a precondition). Init reports how long creating
// the table took. Of the options, Server gives each size a table of its
// own on a database server.
func Bench(b *testing.B, open OpenFunc, ext string, opts ...Option) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	sizes := BenchSizes
	if env := os.Getenv("BENCH_ROWS"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
				sizes = append(sizes, n)
			}
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "jobs"+ext)
			if o.location != nil {
				path = o.benchLocation(b)
			}
			benchSize(b, open, path, n)
		})
	}
}

func benchSize(b *testing.B, open OpenFunc, path string, n int) {
	ctx := b.Context()
	s, err := open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	rows := func(yield func([]any, error) bool) {
		for i := range n {
			g := fmt.Sprintf("POLYGON ((%d.1 51, %d.1 51.1, %d 51.1, %d 51, %d.1 51))", i%170, i%170, i%170, i%170, i%170)
			if !yield([]any{int64(2000 + i%25), fmt.Sprint("tile ", i), g}, nil) {
				return
			}
		}
	}
	start := time.Now()
	if err := s.Init(ctx, []string{"year", "title", "geometry"}, rows); err != nil {
		b.Fatal(err)
	}
	initTime := time.Since(start)
	for range n / 100 {
		if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "a"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("Init", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(initTime.Seconds(), "init-s")
	})
	b.Run("Open", func(b *testing.B) {
		var peak, settled int64
		measured := false
		for b.Loop() {
			if !measured { // start from what the process keeps anyway
				b.StopTimer()
				time.Sleep(settleTime)
				b.StartTimer()
			}
			before := residentBytes()
			resetPeak()
			s, err := open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Counts(ctx); err != nil {
				b.Fatal(err)
			}
			peak = max(peak, peakBytes()-before)
			if !measured {
				// What the open store keeps once the allocators have
				// returned what the open freed.
				b.StopTimer()
				time.Sleep(settleTime)
				settled, measured = max(0, residentBytes()-before), true
				b.StartTimer()
			}
			s.Close()
		}
		b.ReportMetric(float64(peak)/(1<<20), "open-peak-MB")
		b.ReportMetric(float64(settled)/(1<<20), "open-RSS-MB")
	})
	s, err = open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	running, err := s.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Running}, Limit: 10})
	if err != nil || len(running) < 10 {
		b.Fatalf("running rows: %d, %v", len(running), err)
	}
	b.Run("Counts", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Counts(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Select100", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.NotStarted}, Limit: 100}); err != nil {
				b.Fatal(err)
			}
		}
	})
	if f, ok := s.(driver.Flusher); ok {
		b.Run("Flush", func(b *testing.B) {
			for b.Loop() {
				if err := s.Update(ctx, driver.Update{Key: running[0].Key, Set: driver.Values{driver.ColUpdatedAt: time.Now().UTC().Format(time.RFC3339Nano)}}); err != nil {
					b.Fatal(err)
				}
				if err := f.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("Update1", func(b *testing.B) {
		u := driver.Update{Key: running[0].Key, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColUpdatedAt: "2026-01-01T00:00:00Z"}}
		for b.Loop() {
			if err := s.Update(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Claim", func(b *testing.B) {
		// Claimed rows are given back, outside the timer, when none is left.
		var claimed []driver.Update
		giveBack := func() {
			for len(claimed) > 0 {
				k := min(len(claimed), 500)
				if err := s.Update(ctx, claimed[:k]...); err != nil {
					b.Fatal(err)
				}
				claimed = claimed[k:]
			}
		}
		for b.Loop() {
			j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a"})
			if errors.Is(err, driver.ErrNotFound) {
				b.StopTimer()
				giveBack()
				b.StartTimer()
				j, err = s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a"})
			}
			if err != nil {
				b.Fatal(err)
			}
			claimed = append(claimed, driver.Update{Key: j.Key, Set: driver.Values{driver.ColStatus: driver.NotStarted, driver.ColBackend: nil}})
		}
		b.StopTimer()
		giveBack()
	})
	b.Run("Update10", func(b *testing.B) {
		us := make([]driver.Update, 10)
		for i := range us {
			us[i] = driver.Update{Key: running[i].Key, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColUpdatedAt: "2026-01-01T00:00:00Z"}}
		}
		for b.Loop() {
			if err := s.Update(ctx, us...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// settleTime is how long Bench waits before reading what an open store
// keeps resident: DuckDB's allocator returns freed memory within a second.
const settleTime = 2 * time.Second

// residentBytes is the process's resident memory now (Linux), after a GC.
func residentBytes() int64 {
	runtime.GC()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// resetPeak makes the kernel's peak resident memory (VmHWM) start again
// from the current one (Linux 4.0 and later).
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakBytes is the process's peak resident memory (Linux) since resetPeak.
func peakBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}
