package postgres_test

import (
	"context"
	"strings"
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
	drivertest.Run(t, open, "", drivertest.Server(func(t *testing.T) string { return pgtest.Location(t) }, serverTable), drivertest.Foreign(writeForeign),
		drivertest.Reader(func(ctx context.Context, location string) (driver.Store, error) {
			return postgres.OpenReader(ctx, location)
		}))
}

// Replace swaps every row at once, adds the columns the table lacks, and
// leaves the table as it was when a row is bad.
func TestReplace(t *testing.T) {
	s, jobs := newJobs(t, 3)
	ctx := t.Context()
	if err := s.Update(ctx, driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColStatus: driver.Error, driver.ColID: "j-2"}}); err != nil {
		t.Fatal(err)
	}
	cols := []string{"n", "retries", "status", "id"}
	rows := [][]any{{int64(0), nil, "not_started", nil}, {int64(1), int64(1), "not_started", nil}, {int64(2), nil, "not_started", nil}}
	if err := s.Replace(ctx, cols, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Select(ctx, driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Columns(ctx); len(c) != 2 || c[1] != "retries" {
		t.Errorf("Columns = %v, want [n retries]", c)
	}
	for i, j := range got {
		if j.Key != int64(i+1) || j.Status != driver.NotStarted || j.ID != "" || j.Data["n"] != int64(i) || j.Data["retries"] != rows[i][1] {
			t.Errorf("row %d = %+v", i, j)
		}
	}
	counts, _ := s.Counts(ctx)
	if len(counts) != 1 || counts[0].N != 3 || counts[0].Status != driver.NotStarted {
		t.Errorf("Counts after Replace = %+v", counts)
	}
	bad := [][]any{{int64(9), nil, "done", nil}}
	if err := s.Replace(ctx, cols, drivertest.Rows(bad)); err == nil || !strings.Contains(err.Error(), "done") {
		t.Fatalf("Replace with a bad status: %v", err)
	}
	if after, _ := s.Select(ctx, driver.Filter{}); len(after) != 3 {
		t.Errorf("a failed Replace changed the table: %d rows", len(after))
	}
}

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct{ in, conn, table, err string }{
		{"postgres://u@h/db", "postgres://u@h/db", "jobs", ""},
		{"postgresql://u@h:5433/db?table=s2_2024&sslmode=disable", "postgresql://u@h:5433/db?sslmode=disable", "s2_2024", ""},
		{"postgres:///db?table=x", "postgres:///db", "x", ""},
		{"postgres://u:secret@h/db", "", "", "PGPASSWORD"},
		{"postgres://u@h/db?password=secret", "", "", "PGPASSWORD"},
		{"mysql://h/db", "", "", "postgres://"},
	} {
		conn, table, err := postgres.ParseLocation(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseLocation(%q): err = %v, want one mentioning %s without the secret", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || conn != tt.conn || table != tt.table {
			t.Errorf("ParseLocation(%q) = %q, %q, %v; want %q, %q", tt.in, conn, table, err, tt.conn, tt.table)
		}
	}
	for _, loc := range []string{"postgres://h/db", "postgresql://h/db?table=t"} {
		if d, _, err := driver.Lookup(loc); err != nil || d.Exists == nil {
			t.Errorf("Lookup(%q) = %q, %v; want a server driver", loc, d.Name, err)
		}
	}
}

// Counts stay right as the counts table grows past its compaction, and
// are compacted to one row per back-end and status.
func TestCountsCompact(t *testing.T) {
	s, jobs := newJobs(t, 2)
	ctx := t.Context()
	for i := range 300 {
		st := driver.Running
		if i%2 == 1 {
			st = driver.Queued
		}
		if err := s.Update(ctx, driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: st, driver.ColBackend: "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the first compacts, the second reads the compacted rows
		counts, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, c := range counts {
			got[c.Backend+"/"+string(c.Status)] = c.N
		}
		if len(got) != 2 || got["a/queued"] != 1 || got["/not_started"] != 1 {
			t.Errorf("Counts = %v, want a/queued 1 and /not_started 1", got)
		}
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM "`+s.Table()+`_counts"`).Scan(&n); err != nil || n > 2 {
		t.Errorf("%d rows in the counts table after compaction (%v), want at most 2", n, err)
	}
}
