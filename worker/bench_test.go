package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// BenchmarkRun runs jobs that finish at once on fake back-ends with 50
// parallel jobs each, results downloaded, and reports jobs per second,
// requests per job, CPU per job and the process's peak RSS. The fake
// back-ends run in the same process: CPU and RSS include theirs.
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct{ jobs, backends int }{{400, 2}, {10_000, 4}} {
		b.Run(fmt.Sprintf("jobs=%d/backends=%d", size.jobs, size.backends), func(b *testing.B) {
			benchRun(b, size.jobs, size.backends)
		})
	}
}

func benchRun(b *testing.B, jobs, nBackends int) {
	var requests, ran int
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "jobs.db"))
		if err != nil {
			b.Fatal(err)
		}
		rows := make([][]any, jobs)
		for i := range rows {
			rows[i] = []any{int64(i), fmt.Sprint("job ", i)}
		}
		if err := store.Init(b.Context(), []string{"year", "title"}, drivertest.Rows(rows)); err != nil {
			b.Fatal(err)
		}
		var servers []*remotetest.Server
		var backends []worker.Backend
		for i := range nBackends {
			srv := remotetest.NewServer(remotetest.Options{})
			servers = append(servers, srv)
			c, _ := remote.New(srv.APIURL, nil)
			c.SetToken(srv.ValidToken())
			backends = append(backends, worker.Backend{Name: fmt.Sprint("b", i), Client: c, ParallelJobs: 50, QueueingLimit: 50})
		}
		m, err := worker.New(worker.Config{
			Store: store, Backends: backends, StartJob: startJob, RootDir: b.TempDir(),
			PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Concurrency: 16,
		})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		b.StartTimer()
		start := time.Now()
		if err := m.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		cpu += cpuTime() - cpu0
		for _, s := range servers {
			requests += s.TotalRequests()
			s.Close()
		}
		n, _ := store.Select(b.Context(), driver.Filter{Statuses: []driver.Status{driver.Finished}})
		ran += len(n)
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(requests)/float64(ran), "requests/job")
	b.ReportMetric(float64(ran)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(ran), "cpu-us/job")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns the process's peak resident set in bytes (Linux: KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}
