package query

import (
	"bytes"
	"encoding/json"
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
		// The keys stand in the statement's order, not sorted.
		JSON: "[\n  {\n    \"title\": \"a\",\n    \"year\": 2020,\n    \"cover\": 0.5\n  },\n  {\n    \"title\": \"b\",\n    \"year\": 2021,\n    \"cover\": null\n  }\n]\n",
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

// DuckDB's values that are no plain Go values (DECIMAL, INTERVAL, UUID,
// HUGEINT, lists, structs, MAPs, UNIONs, DATE, TIME) print as DuckDB shows
// them, never as a Go struct; floats JSON has no number for print as
// strings, and JSON keys keep the statement's order.
func TestWriteDuckDBTypes(t *testing.T) {
	_, paths := tables(t)
	db, err := Open(t.Context(), paths[2])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmt := `SELECT 12.30::DECIMAL(10,2) AS z_dec, -0.05::DECIMAL(4,2) AS neg, 1.5 AS lit,
		INTERVAL '1 month 2 days 3.5 seconds' AS iv, INTERVAL '-1 day' AS back, INTERVAL '0 seconds' AS none,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u, 170141183460469231731687303715884105727::HUGEINT AS h,
		[1, 2] AS l, {'k': 2.50::DECIMAL(3,2)} AS s, MAP {'b': 1, 'a': 2} AS m, union_value(n := 2) AS un,
		DATE '2020-01-02' AS d, TIME '10:11:12.5' AS tm,
		'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, '-inf'::FLOAT AS ninf`
	want := map[Format]string{
		CSV: "z_dec,neg,lit,iv,back,none,u,h,l,s,m,un,d,tm,nan,inf,ninf\n" +
			`12.30,-0.05,1.5,P1M2DT3.5S,P-1D,PT0S,6ba7b810-9dad-11d1-80b4-00c04fd430c8,170141183460469231731687303715884105727,` +
			`"[1,2]","{""k"":2.50}","{""b"":1,""a"":2}",2,2020-01-02,10:11:12.5,NaN,+Inf,-Inf` + "\n",
		JSON: `[{"z_dec":12.30,"neg":-0.05,"lit":1.5,"iv":"P1M2DT3.5S","back":"P-1D","none":"PT0S",` +
			`"u":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","h":170141183460469231731687303715884105727,` +
			`"l":[1,2],"s":{"k":2.50},"m":{"b":1,"a":2},"un":2,"d":"2020-01-02","tm":"10:11:12.5",` +
			`"nan":"NaN","inf":"Infinity","ninf":"-Infinity"}]`,
	}
	for f, w := range want {
		rows, err := db.Query(t.Context(), stmt)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Write(&out, rows, f)
		rows.Close()
		got := out.String()
		if f == JSON {
			var compact bytes.Buffer
			if cerr := json.Compact(&compact, out.Bytes()); cerr != nil {
				t.Fatalf("JSON: %v\n%s", cerr, got)
			}
			got = compact.String()
		}
		if err != nil || got != w {
			t.Errorf("%s: %v\n%s\nwant\n%s", f, err, got, w)
		}
	}
}
