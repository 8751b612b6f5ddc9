package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return sqlite.Open(ctx, path)
	}, ".db", drivertest.Foreign(writeForeign), drivertest.Reader(func(ctx context.Context, path string) (driver.Store, error) {
		return sqlite.OpenReader(ctx, path)
	}))
}

// writeForeign writes a table as the sqlite3 shell would: a jobs table
// with the given columns, untyped, and nothing else. It is in WAL mode
// already, as the store leaves every file it opens: a header change that
// is no change of the table.
func writeForeign(path string, columns []string, rows [][]any) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	var quoted, marks []string
	for _, c := range columns {
		quoted = append(quoted, `"`+c+`"`)
		marks = append(marks, "?")
	}
	if _, err := db.Exec(`PRAGMA journal_mode = WAL`); err != nil {
		return err
	}
	if _, err := db.Exec("CREATE TABLE jobs (" + strings.Join(quoted, ", ") + ")"); err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO jobs VALUES ("+strings.Join(marks, ", ")+")", r...); err != nil {
			return err
		}
	}
	return nil
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

// Counts come from a table kept by triggers: edits made with other SQLite
// tools must keep them right.
func TestCountsFollowForeignEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows := [][]any{{int64(1)}, {int64(2)}, {int64(3)}, {int64(4)}}
	if err := s.Init(t.Context(), []string{"x"}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`UPDATE jobs SET status = 'finished', backend_name = 'a' WHERE x <= 2`,
		`DELETE FROM jobs WHERE x = 3`,
		`INSERT INTO jobs (x, status) VALUES (5, 'skipped')`,
		`UPDATE jobs SET backend_name = 'b' WHERE x = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	counts, err := s.Counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range counts {
		got[c.Backend+"/"+string(c.Status)] = c.N
	}
	want := map[string]int{"a/finished": 1, "b/finished": 1, "/not_started": 1, "/skipped": 1}
	if len(got) != len(want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("Counts = %v, want %v", got, want)
			break
		}
	}
}

// A status written by another tool into a table Init made is refused with
// the file, row and column, as the CSV store refuses it, instead of the
// row being left out of claims and counts.
func TestUnknownStatusEditedIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(t.Context(), []string{"x"}, drivertest.Rows([][]any{{int64(1)}, {int64(2)}, {int64(3)}})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, _ := sql.Open("sqlite", path)
	// The table refuses it itself.
	_, err = db.Exec(`UPDATE jobs SET status = 'done' WHERE x = 3`)
	if err == nil || !strings.Contains(err.Error(), "unknown status") {
		t.Errorf("update to an unknown status from another tool: err = %v", err)
	}
	if _, err := db.Exec(`INSERT INTO jobs (x, status) VALUES (4, 'bogus')`); err == nil {
		t.Error("insert of an unknown status from another tool accepted")
	}
	// A table an older version made has no such check.
	for _, q := range []string{`DROP TRIGGER jobs_status_insert`, `DROP TRIGGER jobs_status_update`, `UPDATE jobs SET status = 'done' WHERE x = 3`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Counts(t.Context())
	for _, w := range []string{"jobs.db", "row 3", `column "status"`, `"done"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Counts err = %v, want it to name %s", err, w)
		}
	}
	if _, err := s.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart}); err == nil {
		t.Error("Claim went on over a table with an unknown status")
	}
	s.Close()
	// Once the status is fixed, the next open gives the older table its check.
	db, _ = sql.Open("sqlite", path)
	defer db.Close()
	if _, err := db.Exec(`UPDATE jobs SET status = 'finished' WHERE x = 3`); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Counts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE jobs SET status = 'done' WHERE x = 3`); err == nil {
		t.Error("the older table got no status check")
	}
}

// SQLite keeps text that is not UTF-8 as it was given.
func TestKeepsNonUTF8(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(t.Context(), []string{"name"}, drivertest.Rows([][]any{{"caf\xe9"}})); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Select(t.Context(), driver.Filter{})
	if err != nil || len(jobs) != 1 || jobs[0].Data["name"] != "caf\xe9" {
		t.Errorf("rows %+v, %v; want the bytes kept", jobs, err)
	}
}
