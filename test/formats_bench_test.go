package test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	_ "github.com/openeo-batch/worker/driver/csvfile"
	_ "github.com/openeo-batch/worker/driver/duckdb"
	_ "github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// BenchmarkTableFormats runs the core scenario once per table format, in
// one process: 200 jobs (year, title and a WKT polygon per row) on two
// fake back-ends of 10 parallel jobs each, every job queued 0.2 s and
// running 0.3 s, one 1 KiB asset downloaded per job, a tracking cycle
// every 0.5 s. It reports per format the wall time (s/run), the CPU time
// of the whole process (cpu-s/run: the fake back-ends run in it too) and
// the tracking cycles a run took; then it logs each format's wall and CPU
// as a ratio to the CSV table's of the same run, the figures issue 10
// bounds for Parquet (1.1x wall, 1.5x CPU). Run it with
//
//	go test -run '^$' -bench 'TableFormats' -benchtime 1x ./test/
func BenchmarkTableFormats(b *testing.B) {
	type result struct{ wall, cpu float64 }
	results := map[string]result{}
	formats := []string{"csv", "parquet", "sqlite", "duckdb"}
	for _, ext := range formats {
		b.Run(ext, func(b *testing.B) {
			var wall, cpu time.Duration
			var cycles, runs int
			for b.Loop() {
				w, c, n := runScenario(b, "jobs."+ext)
				wall, cpu, cycles, runs = wall+w, cpu+c, cycles+n, runs+1
			}
			r := result{wall.Seconds() / float64(runs), cpu.Seconds() / float64(runs)}
			results[ext] = r
			b.ReportMetric(r.wall, "s/run")
			b.ReportMetric(r.cpu, "cpu-s/run")
			b.ReportMetric(float64(cycles)/float64(runs), "cycles/run")
		})
	}
	base, ok := results["csv"]
	if !ok {
		return
	}
	for _, ext := range formats {
		if r, ok := results[ext]; ok && ext != "csv" {
			b.Logf("%s/csv: wall %.2fx, cpu %.2fx", ext, r.wall/base.wall, r.cpu/base.cpu)
		}
	}
}

// runScenario makes a table named name, runs the core scenario on it and
// returns the run's wall time, the process's CPU time during it, and the
// number of tracking cycles.
func runScenario(b *testing.B, name string) (wall, cpu time.Duration, cycles int) {
	b.StopTimer()
	defer b.StartTimer()
	const jobs, backends = 200, 2
	dir := b.TempDir()
	store, err := driver.Open(b.Context(), filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rows := func(yield func([]any, error) bool) {
		for i := range jobs {
			g := fmt.Sprintf("POLYGON ((%d.1 51, %d.1 51.1, %d 51.1, %d 51, %d.1 51))", i%170, i%170, i%170, i%170, i%170)
			if !yield([]any{int64(2000 + i%25), fmt.Sprint("tile ", i), g}, nil) {
				return
			}
		}
	}
	if err := store.Init(b.Context(), []string{"year", "title", "geometry"}, rows); err != nil {
		b.Fatal(err)
	}
	var bs []worker.Backend
	for i := range backends {
		srv := remotetest.NewServer(remotetest.Options{QueueTime: 200 * time.Millisecond, RunTime: 300 * time.Millisecond})
		defer srv.Close()
		c, err := remote.New(srv.APIURL, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetToken(srv.ValidToken())
		bs = append(bs, worker.Backend{Name: fmt.Sprint("b", i), Client: c, ParallelJobs: 10})
	}
	m, err := worker.New(worker.Config{
		Store: store, Backends: bs, RootDir: filepath.Join(dir, "results"),
		PollInterval: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		StartJob: func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
			return conn.CreateJob(ctx, &remote.JobRequest{
				Title: fmt.Sprint(row.Data["title"]),
				Process: remote.Process{ProcessGraph: map[string]any{
					"add": map[string]any{"process_id": "add", "arguments": map[string]any{"x": row.Data["year"], "y": 1}, "result": true},
				}},
			})
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := processCPU()
	start := time.Now()
	b.StartTimer()
	err = m.Run(b.Context())
	b.StopTimer()
	wall, cpu = time.Since(start), processCPU()-cpu0
	if err != nil {
		b.Fatal(err)
	}
	finished, err := store.Select(b.Context(), driver.Filter{Statuses: []driver.Status{driver.Finished}})
	if err != nil || len(finished) != jobs {
		b.Fatalf("%s: %d of %d jobs finished, %v", name, len(finished), jobs, err)
	}
	return wall, cpu, m.Stats()["track_statuses"]
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
