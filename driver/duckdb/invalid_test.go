package duckdb_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/duckdb"
)

// A file that is no Parquet file or DuckDB database is an
// *driver.InvalidError saying so in a line, without DuckDB's SQL and
// caret; a DuckDB database without a jobs table is driver.ErrNoTable.
func TestOpenInvalidFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.parquet"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "garbage.parquet"), []byte("garbage, and more garbage\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "garbage.duckdb"), []byte("garbage, and more garbage\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.duckdb"), nil, 0o644)
	for f, want := range map[string]string{
		"empty.parquet":   "empty.parquet: not a readable Parquet file: Invalid Input Error: ",
		"garbage.parquet": "garbage.parquet: not a readable Parquet file: Invalid Input Error: ",
		"garbage.duckdb":  "garbage.duckdb: not a DuckDB database file",
		"empty.duckdb":    "empty.duckdb: not a DuckDB database file",
	} {
		s, err := duckdb.Open(t.Context(), filepath.Join(dir, f))
		if err == nil {
			s.Close()
		}
		var ie *driver.InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v (%T), want an InvalidError saying %q in one line", f, err, err, want)
		}
	}
	db, err := sql.Open("duckdb", filepath.Join(dir, "other.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("CREATE TABLE things (a INTEGER)")
	db.Close()
	s, err := duckdb.Open(t.Context(), filepath.Join(dir, "other.duckdb"))
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, driver.ErrNoTable) || strings.Contains(err.Error(), "\n") {
		t.Errorf("a DuckDB file without a jobs table: err = %v", err)
	}
}

// The spill folder of a work file being built, which an init killed
// during its build leaves (X.parquet.work.duckdb.new.tmp/), is gone once
// the next build has committed.
func TestBuildRemovesSpillFolder(t *testing.T) {
	for _, name := range []string{"t.parquet", "t.duckdb"} {
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		spill := path + ".work.duckdb.new.tmp"
		if err := os.Mkdir(spill, 0o755); err != nil {
			t.Fatal(err)
		}
		s, err := duckdb.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Init(t.Context(), []string{"title"}, func(yield func([]any, error) bool) { yield([]any{"a"}, nil) }); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(spill); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: spill folder after Init: %v", name, err)
		}
		s.Close()
		os.Mkdir(spill, 0o755) // a kill while the next open built its work file
		if s, err = duckdb.Open(t.Context(), path); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(spill); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: spill folder after an open: %v", name, err)
		}
	}
}
