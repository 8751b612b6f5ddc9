package postgres_test

import (
	"context"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/postgres"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
)

func open(ctx context.Context, location string) (driver.Store, error) {
	return postgres.Open(ctx, location)
}

func TestConformance(t *testing.T) {
	pgtest.Location(t) // skips, saying why, without a server
	drivertest.Run(t, open, "", drivertest.Server(func(t *testing.T) string { return pgtest.Location(t) }))
}
