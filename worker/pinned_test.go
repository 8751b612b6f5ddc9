package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/csvfile"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestPinnedRows: a not_started row whose backend_name the user set runs
// on that back-end only (issue 9), while the other rows spread over both;
// a row given to a back-end that is not configured stays not_started and
// does not keep the run from ending.
func TestPinnedRows(t *testing.T) { synctest.Test(t, pinnedRows) }

func pinnedRows(t *testing.T) {
	f := newFixture(t, 0, remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond}, "a", "b")
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pinned.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var rows [][]any
	for i := range 12 {
		backend := ""
		switch {
		case i < 6 && i%2 == 0:
			backend = "b" // the first rows, which a would otherwise take too
		case i == 7:
			backend = "z" // not configured
		}
		rows = append(rows, []any{int64(2000 + i), fmt.Sprintf("tile %d", i), backend})
	}
	if err := store.Init(t.Context(), []string{"year", "title", driver.ColBackend}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	f.store, f.cfg.Store = store, store
	f.run(t)
	perBackend := map[string]int{}
	for _, r := range f.rows(t) {
		perBackend[r.Backend]++
		i := r.Key - 1
		switch {
		case i == 7:
			if r.Status != driver.NotStarted || r.Backend != "z" || r.ID != "" {
				t.Errorf("row for back-end z: %s on %q (job %q), want not_started and untouched", r.Status, r.Backend, r.ID)
			}
		case i < 6 && i%2 == 0:
			if r.Status != driver.Finished || r.Backend != "b" {
				t.Errorf("row %d given to b: %s on %q", r.Key, r.Status, r.Backend)
			}
		default:
			if r.Status != driver.Finished {
				t.Errorf("row %d: %s, want finished", r.Key, r.Status)
			}
		}
	}
	if perBackend["a"] == 0 {
		t.Errorf("back-end a ran no job: %v", perBackend)
	}
}

// pinnedFixture has back-ends a and b and a table whose first two rows the
// user gave to b, and a third row free for any; b's faults are given.
func pinnedFixture(t *testing.T, store driver.Store, faults remotetest.Faults) *fixture {
	t.Helper()
	f := newFixture(t, 0, remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond}, "a", "b")
	rows := [][]any{{int64(2000), "pinned 1", "b"}, {int64(2001), "pinned 2", "b"}, {int64(2002), "free", nil}}
	if err := store.Init(t.Context(), []string{"year", "title", driver.ColBackend}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	f.store, f.cfg.Store = store, store
	f.servers["b"].SetFaults(faults)
	return f
}

// checkPinned checks that every row finished, the pinned ones on b, and
// that a never saw a job of a pinned row.
func checkPinned(t *testing.T, f *fixture) {
	t.Helper()
	for _, r := range f.rows(t) {
		pinned := r.Data["title"] != "free"
		if r.Status != driver.Finished || (pinned && (r.Backend != "b" || r.PinnedBackend != "b")) || (!pinned && r.PinnedBackend != "") {
			t.Errorf("row %d (%v): %s on %q, pinned_backend %q", r.Key, r.Data["title"], r.Status, r.Backend, r.PinnedBackend)
		}
	}
	for _, j := range f.servers["a"].Jobs() {
		if j.Title != "free" {
			t.Errorf("back-end a got a job of a row given to b: %q", j.Title)
		}
	}
}

// TestPinnedRowStartFails: a pinned row whose job creation fails on its
// back-end goes back to not_started for that back-end only, and runs
// there on the next attempt, though back-end a is idle meanwhile (issue
// 9, deliverable 8). Before pinned_backend, the failed row was freed for
// any back-end and a took it.
func TestPinnedRowStartFails(t *testing.T) { synctest.Test(t, pinnedRowStartFails) }

func pinnedRowStartFails(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pinned.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := pinnedFixture(t, store, remotetest.Faults{FailedCreates: 2})
	f.run(t)
	checkPinned(t, f)
	if n := f.servers["b"].Injected()["failed-create"]; n != 2 {
		t.Errorf("%d creations failed on b, want 2", n)
	}
	var attempts int
	for _, r := range f.rows(t) {
		if r.Data["title"] != "free" {
			attempts += r.Attempts
		}
	}
	if attempts != 4 {
		t.Errorf("the pinned rows took %d attempts, want 4 (each failed once on b)", attempts)
	}
}

// TestPinnedRowRecovered: a run killed after it claimed a pinned row,
// before the job creation reached the back-end, leaves the row
// queued_for_start on b; the next run frees it for b alone and runs it
// there. On a CSV table, whose file shows such a claim as not_started
// with the row's pinned back-end and keeps the claim in its journal.
func TestPinnedRowRecovered(t *testing.T) { synctest.Test(t, pinnedRowRecovered) }

func pinnedRowRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pinned.csv")
	store, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	f := pinnedFixture(t, store, remotetest.Faults{})
	// What the killed run left: the claims of the two pinned rows, with
	// tags no back-end job carries.
	for i := range 2 {
		if _, err := store.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart,
			driver.ColBackend: "b", driver.ColTag: fmt.Sprint("lost-", i), driver.ColWorker: "dead"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(file), "not_started,") || strings.Count(string(file), ",b,") < 2 {
		t.Errorf("the CSV file should show the claimed rows not_started with back-end b:\n%s", file)
	}
	store, err = csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store, f.cfg.Store = store, store
	for _, r := range f.rows(t)[:2] {
		if r.Status != driver.QueuedForStart || r.PinnedBackend != "b" {
			t.Fatalf("row %d after reopen: %s pinned to %q, want the claim kept", r.Key, r.Status, r.PinnedBackend)
		}
	}
	f.run(t)
	checkPinned(t, f)
}

// TestPinnedRowsBackendOutOfCredit: when the back-end pinned rows are
// given to runs out of credit, they wait for it, not for another, and the
// run ends with an error naming it once nothing else is left, instead of
// waiting for ever (back-end a stays usable throughout).
func TestPinnedRowsBackendOutOfCredit(t *testing.T) { synctest.Test(t, pinnedRowsBackendOutOfCredit) }

func pinnedRowsBackendOutOfCredit(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pinned.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := pinnedFixture(t, store, remotetest.Faults{PaymentRequired: true})
	_, err = f.runErr(t)
	if err == nil || !strings.Contains(err.Error(), "2 rows left not_started: no back-end is usable for them") || !strings.Contains(err.Error(), "b (") {
		t.Fatalf("Run = %v, want the 2 rows waiting for b named", err)
	}
	for _, r := range f.rows(t) {
		want := driver.NotStarted
		if r.Data["title"] == "free" {
			want = driver.Finished
		} else if r.Backend != "b" {
			t.Errorf("row %d given to b: backend_name %q", r.Key, r.Backend)
		}
		if r.Status != want {
			t.Errorf("row %d (%v): %s, want %s", r.Key, r.Data["title"], r.Status, want)
		}
	}
	for _, j := range f.servers["a"].Jobs() {
		if j.Title != "free" {
			t.Errorf("back-end a got a job of a row given to b: %q", j.Title)
		}
	}
}
