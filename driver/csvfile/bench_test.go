package csvfile

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
)

// BenchmarkFlush rewrites a 100k-row table with a WKT geometry column, as
// the store does once per tracking cycle. Journal is the cost of one
// change without a rewrite (what each claim or update pays), the ratio the
// point of the journal.
func BenchmarkFlush(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "jobs.csv"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rows := func(yield func([]any, error) bool) {
		for i := range 100_000 {
			geom := fmt.Sprintf("POLYGON ((%d.1 51, %d.1 51.1, %d 51.1, %d 51, %d.1 51))", i%180, i%180, i%180, i%180, i%180)
			if !yield([]any{int64(2000 + i%25), fmt.Sprint("tile ", i), geom}, nil) {
				return
			}
		}
	}
	if err := s.Init(context.Background(), []string{"year", "title", "geometry"}, rows); err != nil {
		b.Fatal(err)
	}
	b.Run("Flush", func(b *testing.B) {
		for b.Loop() {
			s.mu.Lock()
			err := s.flushLocked()
			s.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Journal", func(b *testing.B) {
		i := int64(0)
		for b.Loop() {
			i = i%100_000 + 1
			if err := s.Update(context.Background(), driver.Update{Key: i, Set: driver.Values{driver.ColUpdatedAt: "2026-01-01T00:00:00Z"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDriver is the shared driver benchmark (drivertest.Bench).
func BenchmarkDriver(b *testing.B) {
	drivertest.Bench(b, func(ctx context.Context, path string) (driver.Store, error) { return Open(ctx, path) }, ".csv")
}
