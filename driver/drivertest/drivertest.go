// Package drivertest is the conformance suite that every driver.Store
// implementation runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
//			return sqlite.Open(ctx, path)
//		}, ".db")
//	}
package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openeo-batch/worker/driver"
)

// OpenFunc opens (creating if needed) the store at path.
type OpenFunc func(ctx context.Context, path string) (driver.Store, error)

// OnlyFile checks that path holds content and is alone in its folder:
// a store that read a file or was refused it left nothing beside it.
func OnlyFile(t testing.TB, path, content string) {
	t.Helper()
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("%s changed:\n%s", path, b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// Rows turns a slice of rows into the iterator Store.Init takes.
func Rows(rows [][]any) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		for _, r := range rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

type harness struct {
	open OpenFunc
	ext  string
	opts options
}

// Option describes what a driver can do, where drivers differ.
type Option func(*options)

type options struct {
	singleWriter bool
	foreign      WriteFunc
	reader       OpenFunc
	location     func(t *testing.T) string
	benchLoc     func(b *testing.B) string
	server       ServerTable
}

// ServerTable tells the suite how to look at a table on a server, where
// there is no file to read.
type ServerTable struct {
	// Snapshot returns the table at location, its columns and values, as
	// bytes that change when anything in it changes.
	Snapshot func(ctx context.Context, location string) ([]byte, error)
	// Name is how errors name the table at location (the file name of a
	// file store).
	Name func(location string) string
}

// snapshot returns the table at path: its file, or its server's snapshot.
func (h harness) snapshot(t *testing.T, path string) []byte {
	t.Helper()
	var b []byte
	var err error
	if h.opts.server.Snapshot != nil {
		b, err = h.opts.server.Snapshot(t.Context(), path)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// name is how errors name the table at path.
func (h harness) name(path string) string {
	if h.opts.server.Name != nil {
		return h.opts.server.Name(path)
	}
	return filepath.Base(path)
}

func (o options) benchLocation(b *testing.B) string { return o.benchLoc(b) }

// Server says the store lives in a database server, not a file: location
// returns a fresh location (a table of its own) for each test, and the
// crash case checks the table a killed process leaves, with no files to
// compare or copy.
func Server(location func(t *testing.T) string, table ServerTable) Option {
	return func(o *options) { o.location, o.server = location, table }
}

// ServerBench is Server for Bench: location returns a fresh location for
// each table size.
func ServerBench(location func(b *testing.B) string) Option {
	return func(o *options) {
		o.benchLoc = location
		o.location = func(*testing.T) string { panic("drivertest: ServerBench is for Bench only") }
	}
}

// WriteFunc writes a table at path as another program would (pandas,
// geopandas, the sqlite3 shell): the given columns only, with no manager
// column the program did not write, in the file format the driver reads.
// Values are int64, float64, string or nil.
type WriteFunc func(path string, columns []string, rows [][]any) error

// Foreign gives the suite a way to write tables the driver did not make,
// which it then opens directly: they get the manager's columns and the
// checks Init gives.
func Foreign(write WriteFunc) Option { return func(o *options) { o.foreign = write } }

// Reader gives the suite the driver's OpenReader (see driver.Driver),
// which must read a foreign table (see Foreign) as the writer would adopt
// it, without changing it.
func Reader(open OpenFunc) Option { return func(o *options) { o.reader = open } }

// SingleWriter says the store allows one writing handle per file (a lock):
// concurrency is tested with goroutines sharing one handle, and a second
// handle must refuse to write.
func SingleWriter() Option { return func(o *options) { o.singleWriter = true } }

func (h harness) path(t *testing.T) string {
	if h.opts.location != nil {
		return h.opts.location(t)
	}
	return filepath.Join(t.TempDir(), "jobs"+h.ext)
}

func (h harness) openAt(t *testing.T, path string) driver.Store {
	t.Helper()
	s, err := h.open(t.Context(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newTable opens a fresh store holding n rows with columns year (int64),
// tile (string) and cover (float64 or nil).
func (h harness) newTable(t *testing.T, n int) (driver.Store, string) {
	t.Helper()
	path := h.path(t)
	s := h.openAt(t, path)
	var rows [][]any
	for i := range n {
		var cover any
		if i%3 != 0 {
			cover = float64(i) / 10
		}
		rows = append(rows, []any{int64(2000 + i), fmt.Sprintf("T%03d", i), cover})
	}
	if err := s.Init(t.Context(), []string{"year", "tile", "cover"}, Rows(rows)); err != nil {
		t.Fatalf("init: %v", err)
	}
	return s, path
}

// Run runs the conformance suite against the driver whose stores open opens.
// ext is the file name ending the driver serves (".db").
func Run(t *testing.T, open OpenFunc, ext string, opts ...Option) {
	h := harness{open: open, ext: ext}
	for _, o := range opts {
		o(&h.opts)
	}
	t.Run("Init", h.testInit)
	t.Run("InitManagerColumns", h.testInitManagerColumns)
	t.Run("NonFinite", h.testNonFinite)
	t.Run("InitBadInput", h.testInitBadInput)
	t.Run("NoTable", h.testNoTable)
	t.Run("Counts", h.testCounts)
	t.Run("Select", h.testSelect)
	t.Run("Get", h.testGet)
	t.Run("Update", h.testUpdate)
	t.Run("UpdateAtomic", h.testUpdateAtomic)
	t.Run("Claim", h.testClaim)
	t.Run("ClaimPinned", h.testClaimPinned)
	t.Run("ClaimRecordsPin", h.testClaimRecordsPin)
	t.Run("ClaimConcurrent", h.testClaimConcurrent)
	t.Run("ClaimWithin", h.testClaimWithin)
	t.Run("ClaimWithinConcurrent", h.testClaimWithinConcurrent)
	t.Run("Durability", h.testDurability)
	t.Run("CrashDuringOpen", h.testCrashDuringOpen)
	t.Run("ForeignTable", h.testForeignTable)
	t.Run("ForeignBadValue", h.testForeignBadValue)
	t.Run("ForeignReader", h.testForeignReader)
}

func (h harness) testInit(t *testing.T) {
	s, _ := h.newTable(t, 5)
	ctx := t.Context()
	cols, err := s.Columns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"year", "tile", "cover"}; !slices.Equal(cols, want) {
		t.Errorf("Columns = %v, want %v", cols, want)
	}
	jobs, err := s.Select(ctx, driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 5 {
		t.Fatalf("got %d rows, want 5", len(jobs))
	}
	for i, j := range jobs {
		if j.Status != driver.NotStarted {
			t.Errorf("row %d: status %q, want not_started", i, j.Status)
		}
		if j.ID != "" || j.Backend != "" || j.Attempts != 0 || j.DownloadPending || j.Costs != nil {
			t.Errorf("row %d: manager columns not empty: %+v", i, j)
		}
		if got, want := j.Data["year"], any(int64(2000+i)); got != want {
			t.Errorf("row %d: year = %#v, want %#v", i, got, want)
		}
		if got, want := j.Data["tile"], any(fmt.Sprintf("T%03d", i)); got != want {
			t.Errorf("row %d: tile = %#v, want %#v", i, got, want)
		}
		var wantCover any
		if i%3 != 0 {
			wantCover = float64(i) / 10
		}
		if got := j.Data["cover"]; got != wantCover {
			t.Errorf("row %d: cover = %#v, want %#v", i, got, wantCover)
		}
		if i > 0 && j.Key <= jobs[i-1].Key {
			t.Errorf("keys not increasing in table order: %d after %d", j.Key, jobs[i-1].Key)
		}
	}
	err = s.Init(ctx, []string{"a"}, Rows([][]any{{"x"}}))
	if !errors.Is(err, driver.ErrExists) {
		t.Errorf("second Init: err = %v, want ErrExists", err)
	}
}

// testNonFinite: floats that are no number (NaN, ±Inf) come back as they
// went in, never as NULL or text, also after the store is opened again;
// a text "NaN" stays text.
func (h harness) testNonFinite(t *testing.T) {
	ctx := t.Context()
	path := h.path(t)
	s := h.openAt(t, path)
	rows := [][]any{{"a", 1.5}, {"b", math.NaN()}, {"c", math.Inf(1)}, {"d", math.Inf(-1)}, {"NaN", nil}}
	if err := s.Init(ctx, []string{"tile", "x"}, Rows(rows)); err != nil {
		t.Fatal(err)
	}
	check := func(s driver.Store, when string) {
		jobs, err := s.Select(ctx, driver.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != len(rows) {
			t.Fatalf("%s: %d rows, want %d", when, len(jobs), len(rows))
		}
		for i, j := range jobs {
			want, _ := rows[i][1].(float64)
			got, ok := j.Data["x"].(float64)
			same := ok && (got == want || math.IsNaN(got) && math.IsNaN(want))
			if rows[i][1] == nil {
				same = j.Data["x"] == nil
			}
			if !same || j.Data["tile"] != rows[i][0] {
				t.Errorf("%s: row %d = %#v, want %#v", when, i+1, j.Data, rows[i])
			}
		}
	}
	check(s, "after Init")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(h.openAt(t, path), "opened again")
}

func (h harness) testInitManagerColumns(t *testing.T) {
	// A table as the Python client leaves it: strings everywhere.
	s := h.openAt(t, h.path(t))
	cols := []string{"name", "id", "backend_name", "status", "costs", "cpu"}
	rows := [][]any{
		{"a", "", "", "not_started", "", ""},
		{"b", "j-1", "vito", "finished", "1.5", "12 cpu-seconds"},
		{"c", "j-2", "vito", "running", nil, nil},
		{"d", "", "", "", "", ""},
	}
	if err := s.Init(t.Context(), cols, Rows(rows)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Columns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"name"}) {
		t.Errorf("Columns = %v, want [name]", got)
	}
	jobs, err := s.Select(t.Context(), driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, backend string
		status      driver.Status
		costs       *float64
		cpu         string
	}{
		{"", "", driver.NotStarted, nil, ""},
		{"j-1", "vito", driver.Finished, ptr(1.5), "12 cpu-seconds"},
		{"j-2", "vito", driver.Running, nil, ""},
		{"", "", driver.NotStarted, nil, ""},
	}
	for i, w := range want {
		j := jobs[i]
		if j.ID != w.id || j.Backend != w.backend || j.Status != w.status || j.CPU != w.cpu ||
			!reflect.DeepEqual(j.Costs, w.costs) {
			t.Errorf("row %d = %+v, want %+v", i, j, w)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func (h harness) testInitBadInput(t *testing.T) {
	tests := []struct {
		name    string
		cols    []string
		rows    [][]any
		wantErr []string
	}{
		{"unknown status", []string{"x", "status"}, [][]any{{1, "not_started"}, {2, "bogus"}}, []string{"row 2", "status", "bogus"}},
		{"bad costs", []string{"x", "costs"}, [][]any{{1, "cheap"}}, []string{"row 1", "costs"}},
		{"ragged row", []string{"x", "y"}, [][]any{{1, 2}, {3}}, []string{"row 2"}},
		{"duplicate column", []string{"x", "x"}, [][]any{{1, 2}}, []string{`"x"`}},
		{"empty column name", []string{"x", ""}, [][]any{{1, 2}}, []string{"column 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := h.path(t)
			s := h.openAt(t, path)
			err := s.Init(t.Context(), tt.cols, Rows(tt.rows))
			if err == nil {
				t.Fatal("Init accepted bad input")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// The table is left untouched: no half-made table.
			if _, err := s.Select(t.Context(), driver.Filter{}); !errors.Is(err, driver.ErrNoTable) {
				t.Errorf("after failed Init, Select err = %v, want ErrNoTable", err)
			}
		})
	}
}

func (h harness) testNoTable(t *testing.T) {
	s := h.openAt(t, h.path(t))
	ctx := t.Context()
	if _, err := s.Counts(ctx); !errors.Is(err, driver.ErrNoTable) {
		t.Errorf("Counts err = %v, want ErrNoTable", err)
	}
	if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart}); !errors.Is(err, driver.ErrNoTable) {
		t.Errorf("Claim err = %v, want ErrNoTable", err)
	}
}

func (h harness) testCounts(t *testing.T) {
	s, _ := h.newTable(t, 6)
	ctx := t.Context()
	jobs, _ := s.Select(ctx, driver.Filter{})
	if _, err := s.Counts(ctx); err != nil { // a driver may keep counts from here on
		t.Fatal(err)
	}
	mustUpdate(t, s,
		driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "a"}},
		driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "a"}},
		driver.Update{Key: jobs[2].Key, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColBackend: "b"}},
	)
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range counts {
		got[c.Backend+"/"+string(c.Status)] += c.N
	}
	want := map[string]int{"/not_started": 3, "a/running": 2, "b/finished": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}

	// Counts follow claims, batches and failed batches.
	if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "b"}); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx,
		driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: driver.Error}},
		driver.Update{Key: jobs[2].Key, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColStatus: driver.Canceled}})
	if !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("batch with a failed precondition: err = %v", err)
	}
	mustUpdate(t, s,
		driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColBackend: nil}},
		driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColStatus: driver.Finished}},
		driver.Update{Key: jobs[2].Key, Set: driver.Values{driver.ColBackend: "a", driver.ColID: "j-3"}})
	counts, err = s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]int{}
	for _, c := range counts {
		if c.N <= 0 {
			t.Errorf("Counts has an empty group: %+v", c)
		}
		got[c.Backend+"/"+string(c.Status)] += c.N
	}
	all, _ := s.Select(ctx, driver.Filter{})
	want = map[string]int{}
	for _, j := range all {
		want[j.Backend+"/"+string(j.Status)]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counts after changes = %v, want %v", got, want)
	}
}

func mustUpdate(t *testing.T, s driver.Store, us ...driver.Update) {
	t.Helper()
	if err := s.Update(t.Context(), us...); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func (h harness) testSelect(t *testing.T) {
	s, _ := h.newTable(t, 10)
	ctx := t.Context()
	all, _ := s.Select(ctx, driver.Filter{})
	for _, i := range []int{1, 3, 5, 7} {
		mustUpdate(t, s, driver.Update{Key: all[i].Key, Set: driver.Values{
			driver.ColStatus: driver.Queued, driver.ColBackend: map[bool]string{true: "a", false: "b"}[i < 5],
		}})
	}
	mustUpdate(t, s, driver.Update{Key: all[9].Key, Set: driver.Values{driver.ColDownloadPending: true, driver.ColStatus: driver.Finished}})

	keys := func(js []driver.Job) []int64 {
		var k []int64
		for _, j := range js {
			k = append(k, j.Key)
		}
		return k
	}
	tests := []struct {
		name string
		f    driver.Filter
		want []int64
	}{
		{"by status", driver.Filter{Statuses: []driver.Status{driver.Queued}}, []int64{all[1].Key, all[3].Key, all[5].Key, all[7].Key}},
		{"limit keeps table order", driver.Filter{Statuses: []driver.Status{driver.Queued}, Limit: 2}, []int64{all[1].Key, all[3].Key}},
		{"by backend", driver.Filter{Statuses: []driver.Status{driver.Queued}, Backend: "b"}, []int64{all[5].Key, all[7].Key}},
		{"several statuses", driver.Filter{Statuses: []driver.Status{driver.Finished, driver.Queued}, Limit: 5}, []int64{all[1].Key, all[3].Key, all[5].Key, all[7].Key, all[9].Key}},
		{"download pending", driver.Filter{DownloadPending: true}, []int64{all[9].Key}},
		{"none", driver.Filter{Statuses: []driver.Status{driver.Error}}, nil},
		{"after a key", driver.Filter{Statuses: []driver.Status{driver.Queued}, After: all[3].Key}, []int64{all[5].Key, all[7].Key}},
		{"a page after a key", driver.Filter{After: all[2].Key, Limit: 3}, []int64{all[3].Key, all[4].Key, all[5].Key}},
		{"after the last key", driver.Filter{After: all[9].Key}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Select(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys(got), tt.want) {
				t.Errorf("keys = %v, want %v", keys(got), tt.want)
			}
		})
	}
}

func (h harness) testGet(t *testing.T) {
	s, _ := h.newTable(t, 3)
	all, _ := s.Select(t.Context(), driver.Filter{})
	j, err := s.Get(t.Context(), all[1].Key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j, all[1]) {
		t.Errorf("Get = %+v, want %+v", j, all[1])
	}
	if _, err := s.Get(t.Context(), all[2].Key+1000); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Get unknown key: err = %v, want ErrNotFound", err)
	}
}

func (h harness) testUpdate(t *testing.T) {
	s, _ := h.newTable(t, 3)
	ctx := t.Context()
	all, _ := s.Select(ctx, driver.Filter{})
	k := all[1].Key
	mustUpdate(t, s, driver.Update{Key: k, Set: driver.Values{
		driver.ColID: "job-1", driver.ColBackend: "vito", driver.ColStatus: driver.Finished,
		driver.ColStartTime: "2024-05-01T10:00:00Z", driver.ColRunningStartTime: "2024-05-01T10:01:00Z",
		driver.ColCPU: "40668 cpu-seconds", driver.ColMemory: "1024 mb-seconds", driver.ColDuration: "2611 seconds",
		driver.ColCosts: 3.25, driver.ColAttempts: 2, driver.ColLastError: "boom, \"quoted\"\nline",
		driver.ColUpdatedAt: "2024-05-01T11:00:00Z", driver.ColTag: "tag-1", driver.ColDownloadPending: true,
		driver.ColWorker: "w-1",
	}})
	got, err := s.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	want := all[1]
	want.ID, want.Backend, want.Status = "job-1", "vito", driver.Finished
	want.StartTime, want.RunningStartTime = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"
	want.CPU, want.Memory, want.Duration = "40668 cpu-seconds", "1024 mb-seconds", "2611 seconds"
	want.Costs, want.Attempts, want.LastError = ptr(3.25), 2, "boom, \"quoted\"\nline"
	want.UpdatedAt, want.Tag, want.DownloadPending, want.Worker = "2024-05-01T11:00:00Z", "tag-1", true, "w-1"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after update\n got %+v\nwant %+v", got, want)
	}
	// Partial: other columns stay; nil clears.
	mustUpdate(t, s, driver.Update{Key: k, From: []driver.Status{driver.Finished}, Set: driver.Values{
		driver.ColDownloadPending: false, driver.ColCosts: nil,
	}})
	got, _ = s.Get(ctx, k)
	want.DownloadPending, want.Costs = false, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after partial update\n got %+v\nwant %+v", got, want)
	}
	// Other rows untouched.
	if other, _ := s.Get(ctx, all[0].Key); !reflect.DeepEqual(other, all[0]) {
		t.Errorf("row 0 changed: %+v", other)
	}
	// Errors.
	err = s.Update(ctx, driver.Update{Key: k, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColStatus: driver.Error}})
	if !errors.Is(err, driver.ErrConflict) {
		t.Errorf("precondition: err = %v, want ErrConflict", err)
	}
	err = s.Update(ctx, driver.Update{Key: all[2].Key + 1000, Set: driver.Values{driver.ColStatus: driver.Error}})
	if !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("unknown key: err = %v, want ErrNotFound", err)
	}
	err = s.Update(ctx, driver.Update{Key: k, Set: driver.Values{driver.ColStatus: "done"}})
	if err == nil || !strings.Contains(err.Error(), "done") {
		t.Errorf("bad status: err = %v, want it named", err)
	}
	err = s.Update(ctx, driver.Update{Key: k, Set: driver.Values{"year": 1}})
	if err == nil {
		t.Error("update of a user column accepted")
	}
}

func (h harness) testUpdateAtomic(t *testing.T) {
	s, _ := h.newTable(t, 3)
	ctx := t.Context()
	all, _ := s.Select(ctx, driver.Filter{})
	err := s.Update(ctx,
		driver.Update{Key: all[0].Key, Set: driver.Values{driver.ColStatus: driver.Running}},
		driver.Update{Key: all[1].Key, From: []driver.Status{driver.Running}, Set: driver.Values{driver.ColStatus: driver.Finished}},
	)
	if !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if got, _ := s.Get(ctx, all[0].Key); got.Status != driver.NotStarted {
		t.Errorf("first update of a failed batch applied: status %q", got.Status)
	}
}

func (h harness) testClaim(t *testing.T) {
	s, _ := h.newTable(t, 3)
	ctx := t.Context()
	all, _ := s.Select(ctx, driver.Filter{})
	mustUpdate(t, s, driver.Update{Key: all[0].Key, Set: driver.Values{driver.ColStatus: driver.Skipped}})
	for _, want := range all[1:] {
		j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a", driver.ColTag: fmt.Sprint("t", want.Key)})
		if err != nil {
			t.Fatal(err)
		}
		if j.Key != want.Key || j.Status != driver.QueuedForStart || j.Backend != "a" || j.Tag != fmt.Sprint("t", want.Key) {
			t.Errorf("Claim = %+v, want row %d claimed", j, want.Key)
		}
		if j.Data["tile"] != want.Data["tile"] {
			t.Errorf("Claim lost user data: %v", j.Data)
		}
	}
	if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart}); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Claim on exhausted table: err = %v, want ErrNotFound", err)
	}
	// Rows given back (a failed start) are claimed again, first in table order.
	mustUpdate(t, s,
		driver.Update{Key: all[2].Key, Set: driver.Values{driver.ColStatus: driver.NotStarted}},
		driver.Update{Key: all[0].Key, Set: driver.Values{driver.ColStatus: driver.NotStarted}})
	for _, want := range []int64{all[0].Key, all[2].Key} {
		j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart})
		if err != nil || j.Key != want {
			t.Errorf("Claim after rows were given back = row %d, %v; want row %d", j.Key, err, want)
		}
	}
}

// testClaimPinned checks that a not_started row whose backend_name the
// user set goes only to that back-end (issue 9), and that claims for
// other back-ends pass over it without losing it.
func (h harness) testClaimPinned(t *testing.T) {
	s := h.openAt(t, h.path(t))
	ctx := t.Context()
	rows := [][]any{{"r1", "b"}, {"r2", ""}, {"r3", "b"}, {"r4", nil}, {"r5", "c"}}
	if err := s.Init(ctx, []string{"tile", driver.ColBackend}, Rows(rows)); err != nil {
		t.Fatal(err)
	}
	claim := func(backend string) string {
		j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: backend})
		if errors.Is(err, driver.ErrNotFound) {
			return "none"
		}
		if err != nil {
			t.Fatal(err)
		}
		if j.Backend != backend {
			t.Errorf("claimed %v for %s: backend_name %q", j.Data["tile"], backend, j.Backend)
		}
		return fmt.Sprint(j.Data["tile"])
	}
	var got []string
	for _, b := range []string{"a", "a", "a", "b", "b", "b", "c", "c"} {
		got = append(got, b+":"+claim(b))
	}
	want := []string{"a:r2", "a:r4", "a:none", "b:r1", "b:r3", "b:none", "c:r5", "c:none"}
	if !slices.Equal(got, want) {
		t.Errorf("claims %v, want %v", got, want)
	}
	// A flush (work file, journal) keeps the passed-over rows claimable.
	all, _ := s.Select(ctx, driver.Filter{})
	mustUpdate(t, s, driver.Update{Key: all[0].Key, Set: driver.Values{driver.ColStatus: driver.NotStarted}})
	if f, ok := s.(driver.Flusher); ok {
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := claim("a"); got != "none" {
		t.Errorf("a row given back to b was claimed for a: %s", got)
	}
	if got := claim("b"); got != "r1" {
		t.Errorf("the row given back to b: claimed %s, want r1", got)
	}
}

// testClaimRecordsPin checks that Claim records the back-end a row was
// given to (pinned_backend), that the record survives a reopen, and that
// a row freed with Job.Unclaimed as its backend_name is again for that
// back-end only, while an unpinned row becomes free for any (issue 9).
func (h harness) testClaimRecordsPin(t *testing.T) {
	path := h.path(t)
	s := h.openAt(t, path)
	ctx := t.Context()
	if err := s.Init(ctx, []string{"tile", driver.ColBackend}, Rows([][]any{{"r1", "b"}, {"r2", nil}})); err != nil {
		t.Fatal(err)
	}
	claim := func(s driver.Store, backend string) (driver.Job, bool) {
		t.Helper()
		j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: backend})
		if errors.Is(err, driver.ErrNotFound) {
			return j, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return j, true
	}
	pinned, _ := claim(s, "b")
	free, _ := claim(s, "b")
	if pinned.Data["tile"] != "r1" || pinned.PinnedBackend != "b" || free.Data["tile"] != "r2" || free.PinnedBackend != "" {
		t.Fatalf("claims for b: %v pinned to %q, %v pinned to %q; want r1 pinned to b, r2 to none",
			pinned.Data["tile"], pinned.PinnedBackend, free.Data["tile"], free.PinnedBackend)
	}
	if got, err := s.Get(ctx, pinned.Key); err != nil || got.PinnedBackend != "b" || got.Backend != "b" {
		t.Errorf("Get of the claimed pinned row: pinned_backend %q, backend_name %q, %v", got.PinnedBackend, got.Backend, err)
	}
	// Both fail to start and are freed as the manager frees rows.
	for _, j := range []driver.Job{pinned, free} {
		mustUpdate(t, s, driver.Update{Key: j.Key, From: []driver.Status{driver.QueuedForStart}, Set: driver.Values{
			driver.ColStatus: driver.NotStarted, driver.ColBackend: j.Unclaimed(), driver.ColTag: nil}})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, path)
	if j, ok := claim(s, "a"); !ok || j.Data["tile"] != "r2" || j.PinnedBackend != "" {
		t.Errorf("claim for a after the rows were freed: %v (ok %v, pinned to %q), want r2", j.Data["tile"], ok, j.PinnedBackend)
	}
	if j, ok := claim(s, "a"); ok {
		t.Errorf("the row pinned to b was claimed for a after it was freed: %v", j.Data["tile"])
	}
	if j, ok := claim(s, "b"); !ok || j.Data["tile"] != "r1" || j.PinnedBackend != "b" {
		t.Errorf("claim for b: %v (ok %v, pinned to %q), want r1 pinned to b", j.Data["tile"], ok, j.PinnedBackend)
	}
}

func (h harness) testClaimConcurrent(t *testing.T) {
	const rows, workers = 60, 4
	s, path := h.newTable(t, rows)
	ctx := t.Context()
	// Two handles on one file where the driver allows it, as two processes would.
	stores := []driver.Store{s, h.openAt(t, path)}
	if h.opts.singleWriter {
		if _, err := stores[1].Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart}); err == nil {
			t.Fatal("a second handle wrote to a single-writer store")
		}
		stores = stores[:1]
	}
	var mu sync.Mutex
	claimed := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			for {
				j, err := st.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: fmt.Sprint("w", w)})
				if errors.Is(err, driver.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				claimed[j.Key]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimed) != rows {
		t.Errorf("%d rows claimed, want %d", len(claimed), rows)
	}
	for k, n := range claimed {
		if n != 1 {
			t.Errorf("row %d claimed %d times", k, n)
		}
	}
}

func (h harness) testDurability(t *testing.T) {
	s, path := h.newTable(t, 4)
	ctx := t.Context()
	all, _ := s.Select(ctx, driver.Filter{})
	mustUpdate(t, s, driver.Update{Key: all[2].Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColID: "j-3", driver.ColCosts: 0.5}})
	claimed, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "x"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.Select(ctx, driver.Filter{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := h.openAt(t, path)
	after, err := s2.Select(ctx, driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("after reopen\n got %+v\nwant %+v", after, before)
	}
	if after[0].Key != claimed.Key || after[0].Status != driver.QueuedForStart {
		t.Errorf("claim lost on reopen: %+v", after[0])
	}
}

// testClaimWithin checks caps for stores that offer ClaimWithin.
func (h harness) testClaimWithin(t *testing.T) {
	s, _ := h.newTable(t, 6)
	cc, ok := s.(driver.CapClaimer)
	if !ok {
		t.Skip("the store has no ClaimWithin")
	}
	ctx := t.Context()
	cap2 := driver.Cap{Backend: "a", Statuses: driver.ActiveStatuses(), Max: 2}
	claim := func(backend string, c driver.Cap) (driver.Job, error) {
		return cc.ClaimWithin(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: backend}, c)
	}
	first, err := claim("a", cap2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claim("a", cap2); err != nil {
		t.Fatal(err)
	}
	if _, err := claim("a", cap2); !errors.Is(err, driver.ErrCapped) {
		t.Fatalf("third claim under a cap of 2: err = %v, want ErrCapped", err)
	}
	if _, err := claim("b", driver.Cap{Backend: "b", Statuses: driver.ActiveStatuses(), Max: 2}); err != nil {
		t.Fatalf("another back-end's cap: %v", err)
	}
	mustUpdate(t, s, driver.Update{Key: first.Key, Set: driver.Values{driver.ColStatus: driver.Finished}})
	if _, err := claim("a", cap2); err != nil {
		t.Fatalf("claim after a row left the cap: %v", err)
	}
	counts, _ := s.Counts(ctx)
	got := map[string]int{}
	for _, c := range counts {
		got[c.Backend+"/"+string(c.Status)] = c.N
	}
	if got["a/queued_for_start"] != 2 || got["b/queued_for_start"] != 1 || got["/not_started"] != 2 {
		t.Errorf("counts after capped claims: %v", got)
	}
}

// testClaimWithinConcurrent claims under one cap from two handles, as two
// processes would: together they never pass it.
func (h harness) testClaimWithinConcurrent(t *testing.T) {
	const rows, max = 40, 5
	s, path := h.newTable(t, rows)
	if _, ok := s.(driver.CapClaimer); !ok {
		t.Skip("the store has no ClaimWithin")
	}
	ctx := t.Context()
	stores := []driver.Store{s, h.openAt(t, path)}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			cc := stores[w%2].(driver.CapClaimer)
			for range rows {
				_, err := cc.ClaimWithin(ctx, driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "a"},
					driver.Cap{Backend: "a", Statuses: driver.ActiveStatuses(), Max: max})
				if err != nil && !errors.Is(err, driver.ErrCapped) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	running, _ := s.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Running}})
	if len(running) != max {
		t.Errorf("%d rows claimed under a cap of %d", len(running), max)
	}
}

// testForeignTable opens tables the driver did not make: one with the
// user's columns only, one with some of the Python client's columns, as it
// leaves them before a run (empty statuses). They get every manager
// column, work as tables made by Init do, and keep their values.
// checkForeign reads the foreign table written with rows (columns year
// and title) through s and checks its columns, rows and counts; it
// returns the rows read.
func checkForeign(t *testing.T, s driver.Store, rows [][]any, wantStatus []driver.Status, wantID []string) []driver.Job {
	t.Helper()
	ctx := t.Context()
	cols, err := s.Columns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"year", "title"}; !slices.Equal(cols, want) {
		t.Errorf("Columns = %v, want %v", cols, want)
	}
	jobs, err := s.Select(ctx, driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(rows) {
		t.Fatalf("%d rows, want %d", len(jobs), len(rows))
	}
	for i, j := range jobs {
		if j.Status != wantStatus[i] || j.ID != wantID[i] || j.Attempts != 0 || j.DownloadPending {
			t.Errorf("row %d = %+v, want status %q, id %q", i+1, j, wantStatus[i], wantID[i])
		}
		if j.Data["year"] != rows[i][0] || j.Data["title"] != rows[i][1] {
			t.Errorf("row %d data = %v, want year %v title %v", i+1, j.Data, rows[i][0], rows[i][1])
		}
		if i > 0 && j.Key <= jobs[i-1].Key {
			t.Errorf("keys not increasing in table order: %d after %d", j.Key, jobs[i-1].Key)
		}
	}
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, want := map[driver.Status]int{}, map[driver.Status]int{}
	for _, c := range counts {
		got[c.Status] += c.N
	}
	for _, st := range wantStatus {
		want[st]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	return jobs
}

// foreignTables are the tables testForeignTable and testForeignReader
// write as another program would.
var foreignTables = []struct {
	name       string
	cols       []string
	rows       [][]any
	wantStatus []driver.Status
	wantID     []string
}{
	{"user columns only", []string{"year", "title"},
		[][]any{{int64(2020), "a"}, {int64(2021), "b"}, {int64(2022), nil}},
		[]driver.Status{driver.NotStarted, driver.NotStarted, driver.NotStarted}, []string{"", "", ""}},
	{"python client columns", []string{"year", "title", "status", "id"},
		[][]any{{int64(2020), "a", nil, nil}, {int64(2021), "b", "", ""}, {int64(2022), nil, "finished", "j-3"}},
		[]driver.Status{driver.NotStarted, driver.NotStarted, driver.Finished}, []string{"", "", "j-3"}},
}

func (h harness) testForeignTable(t *testing.T) {
	if h.opts.foreign == nil {
		t.Skip("the driver's tests give no way to write a foreign table")
	}
	for _, tt := range foreignTables {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := h.path(t)
			if err := h.opts.foreign(path, tt.cols, tt.rows); err != nil {
				t.Fatal(err)
			}
			s := h.openAt(t, path)
			jobs := checkForeign(t, s, tt.rows, tt.wantStatus, tt.wantID)
			claimed, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a"})
			if err != nil || claimed.Key != jobs[0].Key {
				t.Fatalf("Claim = row %d, %v; want row %d", claimed.Key, err, jobs[0].Key)
			}
			mustUpdate(t, s, driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColAttempts: 2, driver.ColDownloadPending: true}})
			before, _ := s.Select(ctx, driver.Filter{})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after, err := h.openAt(t, path).Select(ctx, driver.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Errorf("after reopen\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

// testForeignReader reads foreign tables with the driver's reader (see
// Reader), as status, query, jobs, export and serve do: it sees the rows
// as the writer will once it adopted the table (the same keys, values and
// defaults), and leaves the table as it was, byte for byte.
func (h harness) testForeignReader(t *testing.T) {
	if h.opts.foreign == nil || h.opts.reader == nil {
		t.Skip("the driver's tests give no way to write a foreign table, or the driver has no reader")
	}
	for _, tt := range foreignTables {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := h.path(t)
			if err := h.opts.foreign(path, tt.cols, tt.rows); err != nil {
				t.Fatal(err)
			}
			before := h.snapshot(t, path)
			r, err := h.opts.reader(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			read := checkForeign(t, r, tt.rows, tt.wantStatus, tt.wantID)
			some, err := r.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.NotStarted}, After: read[0].Key, Limit: 1})
			if err != nil || len(some) != 1 || some[0].Key != read[1].Key {
				t.Errorf("Select(not_started after row 1, limit 1) = %+v, %v; want row %d", some, err, read[1].Key)
			}
			if j, err := r.Get(ctx, read[2].Key); err != nil || !reflect.DeepEqual(j, read[2]) {
				t.Errorf("Get(%d) = %+v, %v; want %+v", read[2].Key, j, err, read[2])
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if after := h.snapshot(t, path); !bytes.Equal(before, after) {
				t.Error("reading the table changed it")
			}
			adopted, err := h.openAt(t, path).Select(ctx, driver.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(read, adopted) {
				t.Errorf("the reader read\n%+v\nthe writer, adopting the table,\n%+v", read, adopted)
			}
		})
	}
}

// testForeignBadValue opens foreign tables with a value no tool can read
// in a manager column (a status nobody knows, costs that are no number):
// the error names the file, row and column, and the file is left as it was.
func (h harness) testForeignBadValue(t *testing.T) {
	if h.opts.foreign == nil {
		t.Skip("the driver's tests give no way to write a foreign table")
	}
	tests := []struct {
		name   string
		column string
		rows   [][]any
		want   string
	}{
		{"unknown status", "status", [][]any{{"a", "not_started"}, {"b", "done"}, {"c", nil}}, `"done"`},
		{"costs not a number", "costs", [][]any{{"a", "1.5"}, {"b", "cheap"}, {"c", nil}}, `"cheap"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := h.path(t)
			if err := h.opts.foreign(path, []string{"title", tt.column}, tt.rows); err != nil {
				t.Fatal(err)
			}
			before := h.snapshot(t, path)
			err := func() error {
				s, err := h.open(t.Context(), path)
				if err != nil {
					return err
				}
				defer s.Close()
				if _, err := s.Counts(t.Context()); err != nil {
					return err
				}
				_, err = s.Select(t.Context(), driver.Filter{})
				return err
			}()
			if err == nil {
				t.Fatal("the table was accepted")
			}
			for _, w := range []string{h.name(path), "row 2", `"` + tt.column + `"`, tt.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if after := h.snapshot(t, path); !bytes.Equal(before, after) {
				t.Error("the table file was changed")
			}
		})
	}
}
