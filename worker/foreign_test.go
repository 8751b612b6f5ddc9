package worker_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/worker"
)

// pythonTable replaces f's store by a table as the openEO Python client
// leaves it, with the given rows (year, title, id, backend_name, status).
func (f *fixture) pythonTable(t *testing.T, rows [][]any) {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "py.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Init(t.Context(), []string{"year", "title", "id", "backend_name", "status"}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	f.store, f.cfg.Store = store, store
}

// TestPythonQueuedWithoutJobRuns: rows the Python client left
// queued_for_start without a job id (on no back-end, or on one this run
// does not have) do not stop the run: they go back to not_started, with a
// note in last_error, and run.
func TestPythonQueuedWithoutJobRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 0, cadenceOpts, "a")
		f.cfg.PollInterval = cadencePoll
		f.pythonTable(t, [][]any{
			{int64(2020), "a", nil, "", "queued_for_start"},
			{int64(2021), "b", nil, "elsewhere", "queued_for_start"},
			{int64(2022), "c", nil, nil, "not_started"},
		})
		f.runFor(t, 10*time.Minute)
		for _, r := range f.rows(t) {
			if r.Status != driver.Finished || r.Backend != "a" {
				t.Errorf("row %d: %s on %q, want finished on a", r.Key, r.Status, r.Backend)
			}
		}
	})
}

// TestActiveJobWithoutBackendSaysWhichRow: an active row with a job id
// but an empty backend_name stops the run with a message naming the row
// and its job, not a Go map.
func TestActiveJobWithoutBackendSaysWhichRow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 0, cadenceOpts, "a")
		f.pythonTable(t, [][]any{
			{int64(2020), "a", "j-77", "", "running"},
			{int64(2021), "b", "j-78", "gone", "queued"},
		})
		m, err := worker.New(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Run(t.Context())
		if err == nil {
			t.Fatal("Run succeeded")
		}
		msg := err.Error()
		for _, want := range []string{"row 1 (job j-77", "no backend_name", "gone (1 row)", "--backend gone=URL"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, "map[") || strings.Contains(msg, `[""]`) {
			t.Errorf("error %q shows Go values", msg)
		}
	})
}

// TestOneLine: what goes to last_error has no line breaks.
func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"write a: no space left on device":         "write a: no space left on device",
		"asset a: disk full\nasset b: disk full\n": "asset a: disk full; asset b: disk full",
		"x\r\n\r\n  y  \n":                         "x; y",
		"  plain  ":                                "plain",
	} {
		if got := worker.OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
	if got := worker.HandlerError(driver.Finished, errors.New("a: full\nb: full")); strings.Contains(got, "\n") {
		t.Errorf("HandlerError keeps a newline: %q", got)
	}
}
