package worker_test

import (
	"context"
	"fmt"
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

// BenchmarkRun runs 400 jobs that finish at once over 2 fake back-ends
// (50 parallel jobs each), results downloaded, and reports the requests
// each job cost and the jobs run per second.
func BenchmarkRun(b *testing.B) {
	const jobs = 400
	var requests, ran int
	var elapsed time.Duration
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
		for i := range 2 {
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
		b.StartTimer()
		start := time.Now()
		if err := m.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
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
}
