package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return sqlite.Open(ctx, path)
	}, ".db")
}

func TestRegistered(t *testing.T) {
	for _, loc := range []string{"jobs.db", "x/jobs.sqlite", "sqlite:///tmp/j", "sqlite:rel.file"} {
		d, _, err := driver.Lookup(loc)
		if err != nil || d.Name != "sqlite" {
			t.Errorf("Lookup(%q) = %q, %v; want sqlite", loc, d.Name, err)
		}
	}
}

// The user's columns are plain SQL columns, readable by any SQLite client.
func TestPlainSQL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows := [][]any{{int64(2020), "a"}, {int64(2021), "b"}}
	if err := s.Init(t.Context(), []string{"year", "weird \"name\""}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM jobs WHERE year > 2020 AND "weird ""name""" = 'b' AND status = 'not_started'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("count = %d, want 1", n)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}
