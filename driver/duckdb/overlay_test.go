package duckdb_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/duckdb"
)

// A journal line cut short by a crash is a change that never returned:
// the next open leaves it out and keeps the lines before it.
func TestJournalCutShort(t *testing.T) {
	path := crashedRun(t) // one claim, in the journal only
	f, err := os.OpenFile(path+".work.duckdb.journal", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`[{"k":2,"s":{"status":"queued_for_st`)
	f.Close()
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.Select(t.Context(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}})
	if err != nil || len(rows) != 1 || rows[0].Key != 1 {
		t.Fatalf("claimed rows %+v, %v; want row 1 only", rows, err)
	}
}

// A journal line that does not read, and is not the last, stops the open
// with an error naming the journal and the line; nothing is changed.
func TestJournalCorrupt(t *testing.T) {
	path := crashedRun(t)
	journal := path + ".work.duckdb.journal"
	b, _ := os.ReadFile(journal)
	os.WriteFile(journal, append([]byte("not json\n"), b...), 0o600)
	table, _ := os.ReadFile(path)
	_, err := duckdb.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), journal+": line 1") {
		t.Fatalf("err = %v, want one naming %s line 1", err, journal)
	}
	if now, _ := os.ReadFile(path); string(now) != string(table) {
		t.Error("the table was changed")
	}
	if now, _ := os.ReadFile(journal); len(now) != len(b)+9 {
		t.Error("the journal was changed")
	}
}

// The store answers from its cache of changed rows and from the work file
// alike: after any mix of claims and updates, every selection is the same
// before a flush (changes in the cache), after it (in the work file) and
// after the table is opened again.
func TestCacheAgreesWithWorkFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	s, err := duckdb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	for i := range 150 {
		rows = append(rows, []any{fmt.Sprint("t", i)})
	}
	if err := s.Init(ctx, []string{"title"}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	statuses := []driver.Status{driver.NotStarted, driver.QueuedForStart, driver.Queued, driver.Running, driver.Finished, driver.Error}
	filters := []driver.Filter{
		{},
		{Limit: 7},
		{Statuses: []driver.Status{driver.NotStarted}, Limit: 5},
		{Statuses: driver.ActiveStatuses()},
		{Statuses: []driver.Status{driver.Running, driver.Queued}, Backend: "a"},
		{DownloadPending: true},
		{DownloadPending: true, Limit: 3},
		{Backend: "b", Limit: 4},
	}
	selectAll := func() [][]driver.Job {
		var out [][]driver.Job
		for _, f := range filters {
			jobs, err := s.Select(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, jobs)
		}
		return out
	}
	for round := range 6 {
		for range 40 {
			switch r.IntN(3) {
			case 0:
				if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: []string{"a", "b"}[r.IntN(2)]}); err != nil && !errors.Is(err, driver.ErrNotFound) {
					t.Fatal(err)
				}
			default:
				set := driver.Values{driver.ColStatus: statuses[r.IntN(len(statuses))], driver.ColUpdatedAt: fmt.Sprint(round)}
				if r.IntN(3) == 0 {
					set[driver.ColDownloadPending] = r.IntN(2) == 0
				}
				if set[driver.ColStatus] == driver.NotStarted {
					set[driver.ColBackend] = nil
				}
				if err := s.Update(ctx, driver.Update{Key: int64(1 + r.IntN(150)), Set: set}); err != nil {
					t.Fatal(err)
				}
			}
		}
		cached := selectAll()
		counts, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if stored := selectAll(); !reflect.DeepEqual(cached, stored) {
			t.Fatalf("round %d: selections differ before and after a flush:\n%v\n%v", round, cached, stored)
		}
		if round%2 == 1 {
			s.Close()
			if s, err = duckdb.Open(ctx, path); err != nil {
				t.Fatal(err)
			}
			if stored := selectAll(); !reflect.DeepEqual(cached, stored) {
				t.Fatalf("round %d: selections differ after reopening", round)
			}
			if again, err := s.Counts(ctx); err != nil || !reflect.DeepEqual(again, counts) {
				t.Fatalf("round %d: counts %v, then %v after reopening (%v)", round, counts, again, err)
			}
		}
	}
	s.Close()
}
