package duckdb_test

import (
	"context"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/duckdb"
)

// BenchmarkDriver is the shared driver benchmark (drivertest.Bench).
func BenchmarkDriver(b *testing.B) {
	open := func(ctx context.Context, path string) (driver.Store, error) { return duckdb.Open(ctx, path) }
	b.Run("parquet", func(b *testing.B) { drivertest.Bench(b, open, ".parquet") })
	b.Run("duckdb", func(b *testing.B) { drivertest.Bench(b, open, ".duckdb") })
}
