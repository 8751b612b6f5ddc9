package csvfile

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
)

// timers stands in for time.AfterFunc: nothing fires until the test says.
type timers struct {
	mu      sync.Mutex
	pending []*timer
}

type timer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (ts *timers) after(d time.Duration, f func()) func() bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := &timer{d: d, f: f}
	ts.pending = append(ts.pending, t)
	return func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// armed returns the delays of the timers neither fired nor stopped.
func (ts *timers) armed() []time.Duration {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []time.Duration
	for _, t := range ts.pending {
		if !t.stopped {
			out = append(out, t.d)
		}
	}
	return out
}

// fire runs the armed timers, as their time has come.
func (ts *timers) fire() {
	ts.mu.Lock()
	var due []*timer
	for _, t := range ts.pending {
		if !t.stopped {
			t.stopped = true
			due = append(due, t)
		}
	}
	ts.pending = nil
	ts.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// pythonRow is a row as the Python client reads it from the file alone.
type pythonRow struct{ id, backend, status string }

func pythonView(t *testing.T, path string) []pythonRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	id, be, st := slices.Index(recs[0], "id"), slices.Index(recs[0], "backend_name"), slices.Index(recs[0], "status")
	var out []pythonRow
	for _, r := range recs[1:] {
		out = append(out, pythonRow{r[id], r[be], r[st]})
	}
	return out
}

// checkPythonResumes fails when the file shows an active row without a job
// id: the Python client would track job "nan" for it forever.
func checkPythonResumes(t *testing.T, path, when string) {
	t.Helper()
	for i, r := range pythonView(t, path) {
		if driver.Status(r.status).Active() && r.id == "" {
			t.Errorf("%s: the file shows row %d %s without a job id", when, i+1, r.status)
		}
	}
}

func newPromptTable(t *testing.T, ts *timers, rows int) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.csv")
	s, err := OpenWith(t.Context(), path, Options{AfterFunc: ts.after})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := make([][]any, rows)
	for i := range data {
		data[i] = []any{int64(i)}
	}
	if err := s.Init(t.Context(), []string{"n"}, drivertest.Rows(data)); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func claim(t *testing.T, s *Store, tag string) driver.Job {
	t.Helper()
	j, err := s.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "b", driver.ColTag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func update(t *testing.T, s *Store, key int64, set driver.Values) {
	t.Helper()
	if err := s.Update(t.Context(), driver.Update{Key: key, Set: set}); err != nil {
		t.Fatal(err)
	}
}

func fileOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A new job id reaches the file within the prompt delay, once for all the
// ids of that delay; other changes wait for Flush. A claimed row whose job
// is being created shows not_started in the file, never active without its
// id, and stays claimed for the next run of ours (the journal keeps it).
func TestJobIDsReachTheFilePromptly(t *testing.T) {
	ts := &timers{}
	s, path := newPromptTable(t, ts, 3)

	j1 := claim(t, s, "t1")
	if a := ts.armed(); len(a) != 0 {
		t.Errorf("a claim without a job id armed %v", a)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := pythonView(t, path)[0]; got != (pythonRow{"", "", "not_started"}) {
		t.Errorf("the file shows the claimed row as %+v, want it not_started", got)
	}
	r, err := OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get(t.Context(), j1.Key); got.Status != driver.QueuedForStart || got.Backend != "b" || got.Tag != "t1" {
		t.Errorf("our reader sees %+v, want the claim", got)
	}
	r.Close()

	before := fileOf(t, path)
	update(t, s, j1.Key, driver.Values{driver.ColID: "j-1"})
	if a := ts.armed(); !slices.Equal(a, []time.Duration{time.Second}) {
		t.Fatalf("after a job id, armed %v, want one rewrite in 1s", a)
	}
	j2 := claim(t, s, "t2")
	update(t, s, j2.Key, driver.Values{driver.ColID: "j-2"})
	if a := ts.armed(); len(a) != 1 {
		t.Errorf("a second id armed another rewrite: %v", a)
	}
	if fileOf(t, path) != before {
		t.Error("the file was rewritten before the delay")
	}
	ts.fire()
	view := pythonView(t, path)
	if view[0] != (pythonRow{"j-1", "b", "queued_for_start"}) || view[1] != (pythonRow{"j-2", "b", "queued_for_start"}) {
		t.Errorf("after the delay the file shows %+v", view[:2])
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Errorf("journal left once the file shows everything: %v", err)
	}

	before = fileOf(t, path)
	update(t, s, j1.Key, driver.Values{driver.ColStatus: driver.Queued})
	if a := ts.armed(); len(a) != 0 {
		t.Errorf("a change without a job id armed %v", a)
	}
	if fileOf(t, path) != before {
		t.Error("a change without a job id rewrote the file")
	}

	j3 := claim(t, s, "t3")
	update(t, s, j3.Key, driver.Values{driver.ColID: "j-3"})
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a := ts.armed(); len(a) != 0 {
		t.Errorf("a Flush left the rewrite for the id armed: %v", a)
	}
	if got := pythonView(t, path)[2]; got != (pythonRow{"j-3", "b", "queued_for_start"}) {
		t.Errorf("after Flush row 3 is %+v", got)
	}
}

// snapshot copies what a kill at this instant leaves, with the table as
// the store holds it then (the caller holds s.mu or is its only user).
type snapshot struct {
	when string
	path string
	want []pythonRow // id, backend_name, status of each row, as they are
}

func (s *Store) take(t *testing.T, when string) snapshot {
	dir := t.TempDir()
	for _, name := range []string{"jobs.csv", "jobs.csv.journal"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(s.path), name))
		if err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	snap := snapshot{when: when, path: filepath.Join(dir, "jobs.csv")}
	for i, r := range s.rows {
		snap.want = append(snap.want, pythonRow{r.cells[s.col[driver.ColID]], r.cells[s.col[driver.ColBackend]], string(s.status(i))})
	}
	return snap
}

// A kill at any instant (between calls, or inside a rewrite) leaves a file
// the Python client resumes without an active row lacking its job id, and
// a file and journal from which we resume every claim as it was.
func TestKillAtAnyInstant(t *testing.T) {
	ts := &timers{}
	path := filepath.Join(t.TempDir(), "jobs.csv")
	var snaps []snapshot
	var s *Store
	opts := Options{AfterFunc: ts.after}
	opts.crashPoint = func(stage string) { snaps = append(snaps, s.take(t, "rewrite "+stage)) }
	opts.journalWrite = func(b []byte) {
		// Killed part way through this write: the rows are as they were
		// before it (the change it carries is made once it is written), so
		// only cuts that leave its last line incomplete are tried.
		for _, cut := range cuts(b, false) {
			snap := s.take(t, fmt.Sprintf("journal write cut at byte %d of %d", cut, len(b)))
			appendJournal(t, snap.path, b[:cut])
			snaps = append(snaps, snap)
		}
	}
	s, err := OpenWith(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(t.Context(), []string{"n"}, drivertest.Rows([][]any{{int64(1)}, {int64(2)}, {int64(3)}})); err != nil {
		t.Fatal(err)
	}
	step := func(when string) { snaps = append(snaps, s.take(t, when)) }
	j1, j2 := claim(t, s, "t1"), claim(t, s, "t2")
	step("claims")
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	step("flush")
	update(t, s, j1.Key, driver.Values{driver.ColID: "j-1"})
	step("job id")
	ts.fire()
	step("prompt rewrite")
	update(t, s, j2.Key, driver.Values{driver.ColStatus: driver.NotStarted, driver.ColBackend: nil})
	update(t, s, j1.Key, driver.Values{driver.ColStatus: driver.Queued})
	step("updates")
	// One Update of two rows: a kill part way through its write keeps
	// neither change, as Update is atomic.
	if err := s.Update(t.Context(),
		driver.Update{Key: j1.Key, Set: driver.Values{driver.ColStatus: driver.Running}},
		driver.Update{Key: j2.Key, Set: driver.Values{driver.ColTag: "t2b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	step("last flush")

	for _, snap := range snaps {
		checkPythonResumes(t, snap.path, snap.when)
		resumes(t, snap.when, snap.path, snap.want, true)
		checkPythonResumes(t, snap.path, snap.when+", after our writer reopened it")
		// A kill in the middle of the next journal write leaves a line
		// cut short after what the snapshot holds; its change never
		// happened.
		cut := copyTable(t, snap.path)
		appendJournal(t, cut, []byte(`{"k":1,"s":{"status":"fini`))
		resumes(t, snap.when+", then a journal line cut short", cut, snap.want, true)
	}
	if len(snaps) < 10 {
		t.Errorf("only %d instants tried", len(snaps))
	}
}

// resumes checks that the table at path, as a kill left it, opens with
// rows whose id, back-end and status are want, for our readers and our
// writer alike. With again, the writer's open (which folds the journal
// in) is itself killed at each of its instants, and what each kill leaves
// must resume so too.
func resumes(t *testing.T, when, path string, want []pythonRow, again bool) {
	t.Helper()
	var folds []string
	opts := Options{AfterFunc: never}
	if again {
		opts.crashPoint = func(stage string) { folds = append(folds, copyTable(t, path)) }
		// The open writes no change of its own, so a cut anywhere in its
		// journal writes leaves the table as it was.
		opts.journalWrite = func(b []byte) {
			for _, cut := range cuts(b, true) {
				fold := copyTable(t, path)
				appendJournal(t, fold, b[:cut])
				folds = append(folds, fold)
			}
		}
	}
	for _, open := range []func(context.Context, string) (*Store, error){
		OpenReader,
		func(ctx context.Context, path string) (*Store, error) { return OpenWith(ctx, path, opts) },
		OpenReader,
	} {
		r, err := open(t.Context(), path)
		if err != nil {
			t.Fatalf("%s: reopen: %v", when, err)
		}
		rows, err := r.Select(t.Context(), driver.Filter{})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, j := range rows {
			if got := (pythonRow{j.ID, j.Backend, string(j.Status)}); got != want[i] {
				t.Errorf("%s: resumed row %d as %+v, want %+v", when, i+1, got, want[i])
			}
		}
	}
	for i, fold := range folds {
		checkPythonResumes(t, fold, fmt.Sprintf("%s, then killed at instant %d of the next open", when, i+1))
		resumes(t, fmt.Sprintf("%s, then killed at instant %d of the next open", when, i+1), fold, want, false)
	}
}

// copyTable copies the table at path and its journal to a new folder, as
// a kill at this instant leaves them, and returns the copy's path.
func copyTable(t *testing.T, path string) string {
	dir := t.TempDir()
	for _, name := range []string{"jobs.csv", "jobs.csv.journal"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	return filepath.Join(dir, "jobs.csv")
}

// cuts returns where a kill may stop the journal write b: in the middle of
// each line and, with whole, just before and after each line break too.
func cuts(b []byte, whole bool) []int {
	var out []int
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, (start+i)/2)
			if whole {
				out = append(out, i)
			}
			if whole && i+1 < len(b) {
				out = append(out, i+1)
			}
			start = i + 1
		}
	}
	return out
}

// appendJournal appends b to the journal of the table at path, as a write
// stopped by a kill leaves it.
func appendJournal(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path+".journal", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
