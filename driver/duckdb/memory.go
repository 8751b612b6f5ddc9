package duckdb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	duckdbgo "github.com/duckdb/duckdb-go/v2"
)

// MemoryLimit is the memory DuckDB may use for a table being worked on,
// beyond which it spills to a folder beside the work file. It keeps the
// import of a large table small (78 MB at peak for 1M rows, against 286
// MB without it). A table whose cells are large (detailed polygons) may
// need more for one operation: the store then lifts the limit (roomy).
var MemoryLimit = "64MB"

// outOfMemory reports whether DuckDB refused err's operation for memory.
// The appender reports it as text only.
func outOfMemory(err error) bool {
	var e *duckdbgo.Error
	if errors.As(err, &e) && e.Type == duckdbgo.ErrorTypeOutOfMemory {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Out of Memory Error") || strings.Contains(msg, "failed to pin block") || strings.Contains(msg, "could not allocate block")
}

// roomy runs op, which must undo its own partial work when it fails, and
// runs it once more with DuckDB's default limit (most of the machine's
// memory) if it ran out of memory. The limit stays lifted for the store
// from then on.
func (s *Store) roomy(ctx context.Context, op func() error) error {
	err := op()
	if err == nil || s.unlimited || !outOfMemory(err) {
		return err
	}
	// RESET would leave the buffer pool's limit as it was (DuckDB 1.5).
	if _, rerr := s.db.ExecContext(ctx, "SET memory_limit = "+literal(s.full)); rerr != nil {
		return errors.Join(err, rerr)
	}
	s.unlimited = true
	return op()
}

// limitMemory applies MemoryLimit to a work database, keeping DuckDB's own
// limit for roomy.
func (s *Store) limitMemory(ctx context.Context) error {
	if err := s.db.QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&s.full); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, "SET memory_limit = "+literal(MemoryLimit)); err != nil {
		return fmt.Errorf("duckdb: memory_limit %q: %w", MemoryLimit, err)
	}
	return nil
}
