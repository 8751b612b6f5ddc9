package duckdb

import (
	"errors"

	duckdbgo "github.com/duckdb/duckdb-go/v2"
)

// conflict reports whether err is DuckDB's optimistic concurrency refusing
// a write another connection made first (two handles on one table in one
// process share the database).
func conflict(err error) bool {
	var e *duckdbgo.Error
	return errors.As(err, &e) && e.Type == duckdbgo.ErrorTypeTransaction
}

// retryConflicts runs f again while it loses a write conflict: the winner
// changed the table, so a claim takes the next row and an update checks
// its precondition again.
func retryConflicts[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if !conflict(err) || i == 100 {
			return v, err
		}
	}
}
