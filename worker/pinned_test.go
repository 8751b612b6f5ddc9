package worker_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
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
