package csvfile_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/csvfile"
	"github.com/openeo-batch/worker/driver/drivertest"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return csvfile.Open(ctx, path)
	}, ".csv", drivertest.SingleWriter())
}

func readCells(t *testing.T, path string) [][]string {
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
	return recs
}

func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", "python-client", name))
	if err != nil {
		t.Skipf("fixture not present: %v", err)
	}
	p := filepath.Join(t.TempDir(), name)
	os.WriteFile(p, b, 0o644)
	return p
}

// Tables written by the Python client keep every value through a rewrite:
// quotes, commas, line breaks, unicode, "2020.0", Python-repr dicts, empty
// cells; our columns are appended after theirs.
func TestPythonTablesKeepTheirValues(t *testing.T) {
	for _, name := range []string{"fresh.csv", "geometry.csv", "after-run-with-faults.csv"} {
		t.Run(name, func(t *testing.T) {
			path := copyFixture(t, name)
			before := readCells(t, path)
			s, err := csvfile.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			jobs, err := s.Select(t.Context(), driver.Filter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			// A change that forces a rewrite, leaving the Python columns alone.
			if err := s.Update(t.Context(), driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColAttempts: 0}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after := readCells(t, path)
			if len(after) != len(before) {
				t.Fatalf("%d records, want %d", len(after), len(before))
			}
			for i := range before {
				for j := range before[i] {
					if after[i][j] != before[i][j] {
						t.Errorf("record %d column %q: %q became %q", i, before[0][j], before[i][j], after[i][j])
					}
				}
			}
			if got := after[0][len(before[0]):]; len(got) == 0 || got[0] != driver.ColAttempts {
				t.Errorf("appended columns %v", got)
			}
		})
	}
}

func TestStatusesAndTypesFromPython(t *testing.T) {
	s, err := csvfile.Open(t.Context(), copyFixture(t, "geometry.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, _ := s.Select(t.Context(), driver.Filter{})
	if rows[0].Status != driver.Finished || rows[0].ID != "j-1" || rows[0].Costs == nil || *rows[0].Costs != 4.5 {
		t.Errorf("row 1 = %+v", rows[0])
	}
	if rows[0].Data["year"] != 2020.0 || !strings.HasPrefix(rows[0].Data["geometry"].(string), "POLYGON") {
		t.Errorf("user data = %#v", rows[0].Data)
	}
}

// Changes go to the journal, synced, not to the CSV file: a second reader
// (or a run after a crash) sees them; the file is rewritten on Flush and
// at Close.
func TestJournalBatchesAndSurvives(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.csv")
	s, err := csvfile.OpenWith(t.Context(), path, csvfile.Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, 50)
	for i := range rows {
		rows[i] = []any{int64(i)}
	}
	if err := s.Init(t.Context(), []string{"n"}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	written, _ := os.ReadFile(path)
	for i := range 10 { // claimed, their jobs created
		if _, err := s.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColTag: "t", driver.ColID: fmt.Sprint("j-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if now, _ := os.ReadFile(path); string(now) != string(written) {
		t.Error("the CSV file was rewritten for each change")
	}
	// Another process (the lock makes it read-only) sees every change.
	r, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	claimed, _ := r.Select(t.Context(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}})
	if len(claimed) != 10 || claimed[0].Tag != "t" {
		t.Errorf("reader sees %d claimed rows, want 10", len(claimed))
	}
	if _, err := r.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart}); !errors.Is(err, csvfile.ErrReadOnly) {
		t.Errorf("second writer: err = %v, want ErrReadOnly", err)
	}
	r.Close()
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Errorf("journal left after Flush: %v", err)
	}
	recs := readCells(t, path)
	st := slices.Index(recs[0], driver.ColStatus)
	if recs[10][st] != "queued_for_start" || recs[11][st] != "not_started" {
		t.Errorf("after Flush: %v", recs[10:12])
	}
	if _, err := s.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColID: "j-10"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Errorf("journal left after Close: %v", err)
	}
	if recs := readCells(t, path); recs[11][st] != "queued_for_start" {
		t.Errorf("after Close: %v", recs[11])
	}
}

func TestBadFiles(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unbalanced quote", "a,b\n1,\"x\n", []string{"bad.csv", "line"}},
		{"ragged", "a,b\n1,2\n3\n", []string{"bad.csv", "line 3"}},
		{"bare quote", "a,b\n1,x\"y\n", []string{"bad.csv", "line 2, column 4", "bare"}},
		{"text after the closing quote", "a,b\n1,\"x\"y\n", []string{"bad.csv", "line 2, column 5"}},
		{"unknown status", "a,status\n1,not_started\n2,done\n", []string{"bad.csv", "row 2", "status", "done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.csv")
			os.WriteFile(path, []byte(tt.content), 0o644)
			_, err := csvfile.Open(t.Context(), path)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Error("the bad file was changed")
			}
		})
	}
}

func TestFormatLikePandas(t *testing.T) {
	for v, want := range map[any]string{2020.0: "2020.0", 0.5: "0.5", 1e-05: "1e-05", int64(3): "3", true: "True", nil: "",
		math.NaN(): "nan", math.Inf(1): "inf", math.Inf(-1): "-inf"} {
		if got := csvfile.Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}

// A plain CSV file (the user's columns only) is a job table: opened to
// read, it gets the manager's columns and not_started rows without being
// changed; opened to write, the columns land in the file at the next
// rewrite, the user's cells unchanged, as the Python client adds them.
func TestPlainCSV(t *testing.T) {
	const plain = "year,title\n2000,a\n2001,\"b, c\"\n"
	path := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(path, []byte(plain), 0o644)

	r, err := csvfile.OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := r.Counts(t.Context())
	if err != nil || len(counts) != 1 || counts[0].Status != driver.NotStarted || counts[0].N != 2 {
		t.Errorf("counts = %v, %v; want 2 not_started", counts, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	drivertest.OnlyFile(t, path, plain)

	w, err := csvfile.OpenWith(t.Context(), path, csvfile.Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	if cols, _ := w.Columns(t.Context()); !slices.Equal(cols, []string{"year", "title"}) {
		t.Errorf("user columns %v", cols)
	}
	j, err := w.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "b", driver.ColID: "j-1"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Key != 1 || j.Data["year"] != int64(2000) || j.Data["title"] != "a" {
		t.Errorf("claimed %+v", j)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readCells(t, path)
	for _, c := range []string{"id", "backend_name", "status", "start_time", "running_start_time", "cpu", "memory", "duration", "costs"} {
		if !slices.Contains(recs[0], c) {
			t.Errorf("header %v lacks the Python client's column %q", recs[0], c)
		}
	}
	st := slices.Index(recs[0], driver.ColStatus)
	if !slices.Equal(recs[1][:2], []string{"2000", "a"}) || !slices.Equal(recs[2][:2], []string{"2001", "b, c"}) ||
		recs[1][st] != "queued_for_start" || recs[2][st] != "not_started" {
		t.Errorf("rewritten as %q", recs)
	}
}

// never is an AfterFunc whose time never comes.
func never(time.Duration, func()) func() bool { return func() bool { return true } }

// A plain CSV gets Init's checks: a bad value is an error naming the file,
// row and column, the file is left as it was, and nothing is left beside it.
func TestPlainCSVChecks(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unnamed column", "year,\n2000,a\n", []string{"bad.csv", "column 2 has no name"}},
		{"column twice", "year,year\n2000,2001\n", []string{"bad.csv", `"year" appears twice`}},
		{"unknown status", "year,status\n2000,\n2001,done\n", []string{"bad.csv", "row 2", `"status"`, "done"}},
		{"costs not a number", "year,costs\n2000,1.5\n2001,cheap\n", []string{"bad.csv", "row 2", `"costs"`, "cheap"}},
		{"attempts not whole", "year,attempts\n2000,1.5\n", []string{"bad.csv", "row 1", `"attempts"`}},
		{"download_pending not a boolean", "year,download_pending\n2000,perhaps\n", []string{"bad.csv", "row 1", `"download_pending"`}},
	}
	for _, tt := range tests {
		for _, open := range []struct {
			name string
			open func(context.Context, string) (*csvfile.Store, error)
		}{{"writer", csvfile.Open}, {"reader", csvfile.OpenReader}} {
			t.Run(tt.name+"/"+open.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "bad.csv")
				os.WriteFile(path, []byte(tt.content), 0o644)
				_, err := open.open(t.Context(), path)
				for _, w := range tt.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to mention %q", err, w)
					}
				}
				drivertest.OnlyFile(t, path, tt.content)
			})
		}
	}
}

// Every cell comes back exactly as written, through a rewrite and a
// reopen: bytes that are not UTF-8, a \r\n line break inside a quoted cell
// (which encoding/csv alone reads as \n), quotes, a Windows file's line
// ends, a number too long for int64, nan and inf.
func TestCellsKeptExactly(t *testing.T) {
	const file = "name,note,big,x\r\n" +
		"\xff\xferaw,\"two\r\nlines, \"\"quoted\"\"\",12345678901234567890,nan\r\n" +
		"b,\"lf\nonly\",1,inf\r\n"
	want := [][]any{
		{"\xff\xferaw", "two\r\nlines, \"quoted\"", "12345678901234567890", math.NaN()},
		{"b", "lf\nonly", "1", math.Inf(1)},
	}
	path := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(path, []byte(file), 0o644)
	check := func(when string) {
		t.Helper()
		r, err := csvfile.OpenReader(t.Context(), path)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer r.Close()
		rows, err := r.Select(t.Context(), driver.Filter{})
		if err != nil || len(rows) != 2 {
			t.Fatalf("%s: %d rows, %v", when, len(rows), err)
		}
		for i, row := range want {
			for j, c := range []string{"name", "note", "big", "x"} {
				got := rows[i].Data[c]
				if f, ok := row[j].(float64); ok && math.IsNaN(f) {
					if g, ok := got.(float64); !ok || !math.IsNaN(g) {
						t.Errorf("%s: row %d %s = %#v, want NaN", when, i+1, c, got)
					}
					continue
				}
				if got != row[j] {
					t.Errorf("%s: row %d %s = %#v, want %#v", when, i+1, c, got, row[j])
				}
			}
		}
	}
	check("as written")
	w, err := csvfile.OpenWith(t.Context(), path, csvfile.Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(t.Context(), driver.Update{Key: 2, Set: driver.Values{driver.ColAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "\"two\r\nlines, \"\"quoted\"\"\"") {
		t.Errorf("rewritten as %q", b)
	}
	check("rewritten")
}

// A table copied into a new CSV table keeps nan, inf and -inf as numbers,
// not as empty cells or text.
func TestInitKeepsSpecialFloats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.csv")
	s, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	in := [][]any{{math.NaN()}, {math.Inf(1)}, {math.Inf(-1)}, {1.5}, {nil}}
	if err := s.Init(t.Context(), []string{"x"}, drivertest.Rows(in)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := csvfile.OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, _ := r.Select(t.Context(), driver.Filter{})
	for i, row := range rows {
		got, want := row.Data["x"], in[i][0]
		if w, ok := want.(float64); ok && math.IsNaN(w) {
			if g, ok := got.(float64); !ok || !math.IsNaN(g) {
				t.Errorf("row %d: %#v, want NaN", i+1, got)
			}
		} else if got != want {
			t.Errorf("row %d: %#v, want %#v", i+1, got, want)
		}
	}
}

// A rewrite keeps the mode the user gave the table, and leaves no
// temporary file beside it.
func TestRewriteKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(path, []byte("year\n2000\n"), 0o640)
	os.Chmod(path, 0o640)
	s, err := csvfile.OpenWith(t.Context(), path, csvfile.Options{AfterFunc: never})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), driver.Update{Key: 1, Set: driver.Values{driver.ColAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after a rewrite: %v, %v; want -rw-r-----", fi.Mode(), err)
	}
	s.Close()
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "t.csv" { // the lock file included: Close removes it
			t.Errorf("left beside the table: %s", e.Name())
		}
	}
}

// A value the CSV table cannot keep is refused by Init with its row and
// column, not written as an empty cell; nothing is written.
func TestInitRefusesUnknownTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.csv")
	s, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	in := [][]any{{"a", int64(1)}, {"b", []byte("blob")}}
	err = s.Init(t.Context(), []string{"name", "data"}, drivertest.Rows(in))
	if err == nil || !strings.Contains(err.Error(), "row 2") || !strings.Contains(err.Error(), `"data"`) {
		t.Errorf("err = %v, want row 2, column \"data\"", err)
	}
	s.Close()
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) > 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// A writer that changes nothing leaves a plain CSV as it was: the
// manager's columns come with the first change.
func TestPlainCSVUnchangedWithoutChanges(t *testing.T) {
	const plain = "year,title\n2000,a\n2001,\n"
	path := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(path, []byte(plain), 0o644)
	w, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != plain {
		t.Errorf("rewritten without a change:\n%s", b)
	}
}

// The temporary files of rewrites killed before their rename are removed
// by the next writer, not by a reader (whose writer may be writing them).
func TestKilledRewriteTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.csv")
	os.WriteFile(path, []byte("year\n2000\n"), 0o644)
	temps := []string{".jobs.csv.123.tmp", ".jobs.csv.journal.456.tmp"}
	for _, n := range append(temps, "other.tmp", ".jobs.csvx.1.tmp") {
		os.WriteFile(filepath.Join(dir, n), []byte("half"), 0o644)
	}
	r, err := csvfile.OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	for _, n := range temps {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("a reader removed %s", n)
		}
	}
	w, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, n := range temps {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", n, err)
		}
	}
	for _, n := range []string{"other.tmp", ".jobs.csvx.1.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s, not ours, was removed", n)
		}
	}
}
