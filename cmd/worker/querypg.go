package main

import (
	"context"
	"io"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/postgres"
)

// queryServer runs query where the table lives when that is a database
// server (PostgreSQL: its SQL, in a read-only transaction, see
// postgres.Store.Query) and reports whether it did; other tables are
// queried through DuckDB.
func queryServer(ctx context.Context, location, query, format string, stdout io.Writer) (bool, error) {
	d, _, err := driver.Lookup(location)
	if err != nil || d.Exists == nil {
		return false, nil
	}
	store, err := driver.OpenReader(ctx, location)
	if err != nil {
		return true, err
	}
	defer store.Close()
	pg, ok := store.(*postgres.Store)
	if !ok {
		return false, nil
	}
	rows, done, err := pg.Query(ctx, query)
	if err != nil {
		return true, err
	}
	defer done()
	return true, printRows(stdout, rows, format)
}
