package worker_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// BenchmarkFaults runs the faults scenario of issue 10 in real time: 200
// jobs on 2 back-ends (parallel 5, at most 3 running on each, 0.2 s queued
// and 0.3 s running, 10% of jobs ending in error), polled every 0.5 s,
// once with 5% of requests answered 500/502/503 and once without, in
// alternation. It reports the wall time of each and their ratio
// (faults/clean; target at most 1.15). About a minute per iteration: run
// it with -benchtime=1x.
func BenchmarkFaults(b *testing.B) {
	var clean, faulty time.Duration
	for b.Loop() {
		clean += faultsRun(b, 0)
		faulty += faultsRun(b, 0.05)
	}
	b.ReportMetric(clean.Seconds()/float64(b.N), "clean-s")
	b.ReportMetric(faulty.Seconds()/float64(b.N), "faults-s")
	b.ReportMetric(faulty.Seconds()/clean.Seconds(), "wall-ratio")
}

func faultsRun(b *testing.B, errorRate float64) time.Duration {
	b.Helper()
	const jobs = 200
	store := jobTable(b, jobs)
	var backends []worker.Backend
	for i := range 2 {
		srv := remotetest.NewServer(remotetest.Options{
			QueueTime: 200 * time.Millisecond, RunTime: 300 * time.Millisecond, MaxRunning: 3,
			Outcome: func(j *remote.JobRequest) error {
				h := fnv.New32a()
				h.Write([]byte(j.Title))
				if h.Sum32()%10 == 0 {
					return errors.New("no data")
				}
				return nil
			},
			Faults: remotetest.Faults{Seed: uint64(i + 1), ErrorRate: errorRate},
		})
		defer srv.Close()
		c, err := remote.New(srv.APIURL, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetToken(srv.ValidToken())
		backends = append(backends, worker.Backend{Name: fmt.Sprint("b", i), Client: c, ParallelJobs: 5})
	}
	m, err := worker.New(worker.Config{
		Store: store, Backends: backends, StartJob: startJob, RootDir: b.TempDir(),
		PollInterval: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.Run(ctx); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	done, err := store.Select(b.Context(), driver.Filter{Statuses: []driver.Status{driver.Finished, driver.Error}})
	if err != nil || len(done) != jobs {
		b.Fatalf("%d rows done of %d (%v)", len(done), jobs, err)
	}
	return took
}

// jobTable returns an SQLite job table of n rows (year, title "job N"),
// closed when the test ends.
func jobTable(tb testing.TB, n int) driver.Store {
	tb.Helper()
	store, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "jobs.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{int64(i), fmt.Sprint("job ", i)}
	}
	if err := store.Init(tb.Context(), []string{"year", "title"}, drivertest.Rows(rows)); err != nil {
		tb.Fatal(err)
	}
	return store
}
