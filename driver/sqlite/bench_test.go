package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
)

// BenchmarkStore measures the operations a manager cycle uses on a table of
// 10k rows where 1% of the rows are running. ReadAll is the baseline: what
// a manager that loads the whole table each cycle (the Python tool) pays.
func BenchmarkStore(b *testing.B) {
	const n = 10_000
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "jobs.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{int64(i), fmt.Sprintf("POLYGON((%d 0, 1 0, 1 1, 0 1, %d 0))", i, i)}
	}
	if err := s.Init(b.Context(), []string{"year", "geometry"}, drivertest.Rows(rows)); err != nil {
		b.Fatal(err)
	}
	for range n / 100 {
		if _, err := s.Claim(b.Context(), driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "a"}); err != nil {
			b.Fatal(err)
		}
	}
	running, _ := s.Select(b.Context(), driver.Filter{Statuses: []driver.Status{driver.Running}})
	b.Run("ReadAll", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Select(b.Context(), driver.Filter{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Counts", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Counts(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Select100", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Select(b.Context(), driver.Filter{Statuses: []driver.Status{driver.NotStarted}, Limit: 100}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Update10", func(b *testing.B) {
		us := make([]driver.Update, 10)
		for i := range us {
			us[i] = driver.Update{Key: running[i].Key, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColUpdatedAt: "2026-01-01T00:00:00Z"}}
		}
		for b.Loop() {
			if err := s.Update(b.Context(), us...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDriver is the shared driver benchmark (drivertest.Bench).
func BenchmarkDriver(b *testing.B) {
	drivertest.Bench(b, func(ctx context.Context, path string) (driver.Store, error) { return sqlite.Open(ctx, path) }, ".db")
}
