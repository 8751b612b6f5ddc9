package csvfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/internal/fingerprint"
)

// crashed leaves in a new folder what a run killed after claiming two
// rows and creating their jobs leaves: the CSV file as last written, and a
// journal of the claims and job ids.
func crashed(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "jobs.csv")
	s, err := OpenWith(ctx, src, Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx, []string{"tile"}, drivertest.Rows([][]any{{"a"}, {"b"}, {"c"}})); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColTag: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, driver.Update{Key: j.Key, Set: driver.Values{driver.ColID: fmt.Sprint("j-", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir() // a copy: new files, new times, same content
	for _, name := range []string{"jobs.csv", "jobs.csv.journal"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(src), name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	return filepath.Join(dir, "jobs.csv")
}

// never is an AfterFunc whose time never comes.
func never(time.Duration, func()) func() bool { return func() bool { return true } }

func claimedRows(t *testing.T, path string) int {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, _ := s.Select(context.Background(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}})
	return len(rows)
}

// The journal is replayed onto the file it was written for, even copied.
func TestJournalReplayedOnItsFile(t *testing.T) {
	path := crashed(t)
	if n := claimedRows(t, path); n != 2 {
		t.Errorf("%d claimed rows after the crash, want 2", n)
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Errorf("journal left after it was folded in: %v", err)
	}
}

// A table rewritten after the crash (the Python client resumed it) does
// not get the journal's changes on rows that may now be others: the open
// fails, changes nothing, and says how to go on.
func TestJournalOfAnotherVersionRefused(t *testing.T) {
	path := crashed(t)
	before, _ := os.ReadFile(path)
	python := strings.Replace(string(before), "queued_for_start", "finished", 1) // any rewrite
	python = strings.Replace(python, "\nc,", "\nc2,", 1)
	os.WriteFile(path, []byte(python), 0o644)
	journal, _ := os.ReadFile(path + ".journal")

	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "remove "+path+".journal") || !strings.Contains(err.Error(), "4 changes") ||
		!strings.Contains(err.Error(), "job ids j-0 (row 1), j-1 (row 2);") {
		t.Fatalf("err = %v", err)
	}
	if now, _ := os.ReadFile(path); string(now) != python {
		t.Error("the table was changed")
	}
	if now, _ := os.ReadFile(path + ".journal"); string(now) != string(journal) {
		t.Error("the journal was changed")
	}
	os.Remove(path + ".journal")
	if n := claimedRows(t, path); n != 0 {
		t.Errorf("%d claimed rows once the journal is gone, want the file's 0", n)
	}
}

// A crash after a rewrite and before the journal's removal leaves a
// journal whose changes the new file holds: it is dropped, not refused.
func TestJournalAfterPublishedRewrite(t *testing.T) {
	path := crashed(t)
	s, err := Open(context.Background(), path) // folds the journal in: the file now holds the claims
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	fp := fingerprint.New()
	fp.Write(b)
	var journal []byte
	for _, e := range []entry{{Base: "1:00000000"}, {K: 1, S: map[string]string{"status": "queued_for_start"}}, {Publish: fp.String()}} {
		line, _ := json.Marshal(e)
		journal = append(append(journal, line...), '\n')
	}
	os.WriteFile(path+".journal", journal, 0o644)
	if n := claimedRows(t, path); n != 2 {
		t.Errorf("%d claimed rows, want 2", n)
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Errorf("journal left: %v", err)
	}
}

// A reader never takes the writer's role: a run can start while it reads.
func TestReaderLeavesTheLock(t *testing.T) {
	path := crashed(t) // a journal too: the reader sees its changes
	r, err := OpenReader(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, _ := r.Select(context.Background(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}}); len(n) != 2 {
		t.Errorf("reader sees %d claimed rows, want the journal's 2", len(n))
	}
	w, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Writable(); err != nil {
		t.Errorf("a writer opened while a reader reads: %v", err)
	}
}

// A change whose value is not UTF-8 (a back-end's message in Latin-1, say)
// comes back from the journal byte for byte: a JSON string alone would
// turn those bytes into U+FFFD.
func TestJournalKeepsBytes(t *testing.T) {
	const msg = "caf\xe9 \xff: failed"
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "jobs.csv")
	s, err := OpenWith(ctx, src, Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx, []string{"tile"}, drivertest.Rows([][]any{{"a"}, {"b"}, {"c"}})); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, driver.Update{Key: 1, Set: driver.Values{driver.ColLastError: msg}}); err != nil {
		t.Fatal(err)
	}
	// An Update of several rows goes in one line: its cells too.
	if err := s.Update(ctx, driver.Update{Key: 2, Set: driver.Values{driver.ColLastError: msg}},
		driver.Update{Key: 3, Set: driver.Values{driver.ColLastError: "plain"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // killed now: the change is in the journal only
	for _, name := range []string{"jobs.csv", "jobs.csv.journal"} {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(src), name))
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	r, err := OpenReader(ctx, filepath.Join(dir, "jobs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for key, want := range map[int64]string{1: msg, 2: msg, 3: "plain"} {
		if j, _ := r.Get(ctx, key); j.LastError != want {
			t.Errorf("row %d: last_error = %q, want %q", key, j.LastError, want)
		}
	}
}
