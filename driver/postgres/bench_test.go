package postgres_test

import (
	"testing"

	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
)

// BenchmarkStore measures the store at 10k, 100k and 1M rows (BENCH_ROWS
// picks others): go test -run '^$' -bench Store ./driver/postgres/
func BenchmarkStore(b *testing.B) {
	pgtest.Location(b)
	drivertest.Bench(b, open, "", drivertest.ServerBench(func(b *testing.B) string { return pgtest.Location(b) }))
}
