package worker

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// BenchmarkTrackingCycle measures one cycle of the manager (recover, list
// and record statuses, pending downloads, counts, launch check) on a large
// table with some jobs running on the fake back-end. ReadAll, the baseline,
// reads the whole table once, as a manager that loads its table each loop
// (the Python tool) must at least do.
func BenchmarkTrackingCycle(b *testing.B) {
	for _, size := range []struct{ rows, active int }{{100_000, 100}, {1_000_000, 200}} {
		b.Run(fmt.Sprintf("rows=%d/active=%d", size.rows, size.active), func(b *testing.B) {
			ctx := b.Context()
			store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "jobs.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			rows := func(yield func([]any, error) bool) {
				for i := range size.rows {
					if !yield([]any{int64(i), fmt.Sprintf("POLYGON((%d 0, 1 0, 1 1, 0 1, %d 0))", i, i)}, nil) {
						return
					}
				}
			}
			if err := store.Init(ctx, []string{"year", "geometry"}, iter.Seq2[[]any, error](rows)); err != nil {
				b.Fatal(err)
			}
			srv := remotetest.NewServer(remotetest.Options{RunTime: time.Hour})
			defer srv.Close()
			c, _ := remote.New(srv.APIURL, nil)
			c.SetToken(srv.ValidToken())
			m, err := New(Config{
				Store: store, Backends: []Backend{{Name: "a", Client: c, ParallelJobs: size.active, QueueingLimit: size.active}},
				StartJob: func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
					return conn.CreateJob(ctx, &remote.JobRequest{Process: remote.Process{ProcessGraph: map[string]any{
						"n": map[string]any{"process_id": "add", "arguments": map[string]any{"x": row.Data["year"]}, "result": true}}}})
				},
				PollInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), Concurrency: 32,
			})
			if err != nil {
				b.Fatal(err)
			}
			// Fill the slots, then let every job reach running.
			for range 50 {
				if _, err := m.cycle(ctx, true); err != nil {
					b.Fatal(err)
				}
				m.wg.Wait()
				if n, _ := store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Running}}); len(n) == size.active {
					break
				}
			}
			if n, _ := store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Running}}); len(n) != size.active {
				b.Fatalf("%d running, want %d", len(n), size.active)
			}
			b.Run("Cycle", func(b *testing.B) {
				before := srv.TotalRequests()
				for b.Loop() {
					if _, err := m.cycle(ctx, true); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(srv.TotalRequests()-before)/float64(b.N), "requests/cycle")
			})
			b.Run("ReadAll", func(b *testing.B) {
				for b.Loop() {
					if _, err := store.Select(ctx, driver.Filter{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
