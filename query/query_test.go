package query

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/openeo-batch/worker/driver/csvfile"
	_ "github.com/openeo-batch/worker/driver/duckdb"
	_ "github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/tableconv"
)

// tables writes one small table in every store format into a new folder
// and returns their paths.
func tables(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	tab := &tableconv.Table{Columns: []string{"title", "year", "cover"}, Rows: [][]any{
		{"a", int64(2020), 0.5},
		{"b", int64(2021), nil},
	}}
	var paths []string
	for _, name := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		p := filepath.Join(dir, name)
		if _, err := tableconv.Create(t.Context(), p, tab); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		paths = append(paths, p)
	}
	return dir, paths
}

// Select gives the same rows, with their types, over every store.
func TestSelectEveryStore(t *testing.T) {
	_, paths := tables(t)
	for _, p := range paths {
		db, err := Open(t.Context(), p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		res, err := db.Select(t.Context(), "SELECT title, year, cover, status FROM jobs WHERE year >= ? ORDER BY title", 2020)
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := strings.Join(res.Columns, ","); got != "title,year,cover,status" {
			t.Errorf("%s: columns %s", p, got)
		}
		if len(res.Rows) != 2 {
			t.Fatalf("%s: %d rows, want 2", p, len(res.Rows))
		}
		a, b := res.Rows[0], res.Rows[1]
		if a[0] != "a" || a[1] != int64(2020) || a[2] != 0.5 || a[3] != "not_started" || b[2] != nil {
			t.Errorf("%s: rows %#v", p, res.Rows)
		}
	}
}

// A missing table is fs.ErrNotExist, and no file is made.
func TestOpenMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.db")
	_, err := Open(t.Context(), p)
	var nt *tableconv.NoTableError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &nt) || nt.Location != p {
		t.Errorf("Open of a missing table: %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("Open made the table")
	}
}

// Statements that would change the snapshot, or several at once, are
// refused before they run; reading ones pass.
func TestRefused(t *testing.T) {
	_, paths := tables(t)
	db, err := Open(t.Context(), paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for q, what := range map[string]string{
		"DELETE FROM jobs": "a DELETE", "UPDATE jobs SET status = 'x'": "an UPDATE", "CREATE TABLE t (a INT)": "a CREATE",
		"DROP VIEW jobs": "a DROP", "INSERT INTO jobs (year) VALUES (1)": "an INSERT", "SET threads = 2": "a statement that is not a SELECT",
	} {
		_, err := db.Select(t.Context(), q)
		var r *RefusedError
		if !errors.As(err, &r) || r.What != what || r.Multiple {
			t.Errorf("%s: %v, want a refusal of %s", q, err, what)
		}
	}
	_, err = db.Query(t.Context(), "DELETE FROM jobs; SELECT count(*) FROM jobs")
	if r := (*RefusedError)(nil); !errors.As(err, &r) || !r.Multiple {
		t.Errorf("two statements: %v", err)
	}
	res, err := db.Select(t.Context(), "SELECT count(*) FROM jobs")
	if err != nil || res.Rows[0][0] != int64(2) {
		t.Errorf("after the refusals: %v %v", res, err)
	}
	for _, q := range []string{"DESCRIBE jobs", "SUMMARIZE jobs", "SHOW TABLES", "PRAGMA table_info('jobs')", "EXPLAIN SELECT 1"} {
		if _, err := db.Select(t.Context(), q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	if _, err := db.Select(t.Context(), "SELECT nonsense FROM"); err == nil || errors.As(err, new(*RefusedError)) {
		t.Errorf("bad SQL: %v", err)
	}
}

// DuckDB's locked configuration stands behind the statement check: run
// past it, SQL that would read or write other files, attach a database,
// load an extension or lift the guard fails, on every store.
func TestGuard(t *testing.T) {
	dir, paths := tables(t)
	os.WriteFile(filepath.Join(dir, "secret.csv"), []byte("password\nhunter2\n"), 0o644)
	for _, p := range paths {
		db, err := Open(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"COPY (SELECT * FROM jobs) TO '" + filepath.Join(dir, "stolen.csv") + "'",
			"COPY jobs TO '" + filepath.Join(dir, "stolen.parquet") + "' (FORMAT parquet)",
			"ATTACH '" + filepath.Join(dir, "made.duckdb") + "' AS m",
			"SELECT * FROM read_csv('" + filepath.Join(dir, "secret.csv") + "')",
			"SELECT * FROM glob('" + dir + "/*')",
			"EXPORT DATABASE '" + filepath.Join(dir, "dump") + "'",
			"INSTALL spatial", "LOAD spatial",
			"SET enable_external_access = true", "SET lock_configuration = false",
		} {
			// Past Check: the DB's own handle.
			_, err := db.db.ExecContext(t.Context(), q)
			if err == nil || !(strings.Contains(err.Error(), "disabled") || strings.Contains(err.Error(), "locked")) {
				t.Errorf("%s: %s: DuckDB's guard let it through: %v", filepath.Base(p), q, err)
			}
		}
		db.Close()
		for _, left := range []string{"stolen.csv", "stolen.parquet", "made.duckdb", "dump"} {
			if _, err := os.Stat(filepath.Join(dir, left)); err == nil {
				t.Errorf("%s: %s was written", filepath.Base(p), left)
			}
		}
	}
}

func TestWrite(t *testing.T) {
	_, paths := tables(t)
	db, err := Open(t.Context(), paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for f, want := range map[Format]string{
		Table: "title  year  cover\na      2020  0.5\nb      2021  \n",
		CSV:   "title,year,cover\na,2020,0.5\nb,2021,\n",
		JSON:  "[\n  {\n    \"cover\": 0.5,\n    \"title\": \"a\",\n    \"year\": 2020\n  },\n  {\n    \"cover\": null,\n    \"title\": \"b\",\n    \"year\": 2021\n  }\n]\n",
	} {
		rows, err := db.Query(t.Context(), "SELECT title, year, cover FROM jobs ORDER BY title")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Write(&out, rows, f)
		rows.Close()
		if err != nil || out.String() != want {
			t.Errorf("%s: %v\n%s\nwant\n%s", f, err, out.String(), want)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

// A SQLite or CSV cell that is not UTF-8 is shown with its other bytes
// escaped, and listed by Escaped, instead of failing the whole table.
func TestNotUTF8(t *testing.T) {
	dir := t.TempDir()
	tab := &tableconv.Table{Columns: []string{"title", "year"}, Rows: [][]any{{"cafe", int64(1)}, {"caf\xe9 \\ ok", int64(2)}, {"caf\xc3\xa9", int64(3)}}}
	for _, name := range []string{"t.db", "t.csv"} {
		p := filepath.Join(dir, name)
		if _, err := tableconv.Create(t.Context(), p, tab); err != nil {
			t.Fatal(err)
		}
		db, err := Open(t.Context(), p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		res, err := db.Select(t.Context(), "SELECT title FROM jobs ORDER BY year")
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Rows[1][0]; got != `caf\xE9 \ ok` || res.Rows[2][0] != "café" {
			t.Errorf("%s: %q", name, res.Rows)
		}
		if esc := db.Escaped(); len(esc) != 1 || esc[0] != (Escaped{Row: 2, Column: "title"}) {
			t.Errorf("%s: Escaped() = %v", name, esc)
		}
		db.Close()
	}
}

func TestChangeKeyword(t *testing.T) {
	for stmt, want := range map[string]string{
		"delete from jobs":                           "a DELETE",
		"  -- note\n/* x */ (UPDATE jobs SET a = 1)": "an UPDATE",
		"WITH x AS (SELECT 1), y(a) AS (SELECT 2) INSERT INTO jobs SELECT * FROM x": "an INSERT",
		"WITH RECURSIVE x AS (DELETE FROM t) SELECT 1":                              "",
		"with x as materialized (select 1) select * from x":                         "",
		"select 'delete' from jobs":                                                 "",
		`"delete" from jobs`:                                                        "",
		"truncate jobs":                                                             "a DELETE",
		"COPY jobs TO 'x.csv'":                                                      "a COPY",
		"selct 1":                                                                   "",
		"":                                                                          "",
		"/* open":                                                                   "",
	} {
		if got := changeKeyword(stmt); got != want {
			t.Errorf("changeKeyword(%q) = %q, want %q", stmt, got, want)
		}
	}
}

// FuzzChangeKeyword: any text, however broken, gets an answer and no panic.
func FuzzChangeKeyword(f *testing.F) {
	for _, s := range []string{"delete from jobs", "with x as (select 1) update jobs set a=1", "'", "--", "/*", "(((", ")))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stmt string) {
		switch changeKeyword(stmt) {
		case "", "an INSERT", "an UPDATE", "a DELETE", "a MERGE", "a CREATE", "a DROP", "an ALTER", "a COPY":
		default:
			t.Fatalf("changeKeyword(%q): unknown answer", stmt)
		}
	})
}
