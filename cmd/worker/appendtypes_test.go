package main

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver/postgres/pgtest"
)

// init --append refuses a cell that does not fit the type of the table's
// column (text into a column of years, a fraction into whole numbers,
// text into numbers) on every format, naming the file, row and column,
// exit 2, with the table untouched; a cell that fits is added.
func TestAppendRefusesCellsOfAnotherType(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) { os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644) }
	write("a.csv", "tile,year,cover\nA,2020,0.5\nB,2020,1\n")
	write("type.csv", "tile,year,cover\nH,notayear,0.5\n")
	write("frac.csv", "tile,year,cover\nI,2021,0.5\nJ,2021.5,0.5\n")
	write("cover.csv", "tile,year,cover\nK,2021,cloudy\n")
	write("ok.csv", "tile,year,cover\nL,2022,2\n")
	dbs := []string{"u.db", "u.csv", "u.parquet", "u.duckdb"}
	if os.Getenv(pgtest.Env) != "" {
		dbs = append(dbs, pgtest.Location(t))
	}
	for _, db := range dbs {
		if code, out := cli(t, dir, "init", "--from", "a.csv", "--db", db); code != 0 {
			t.Fatalf("init %s: %s", db, out)
		}
		content := func() []byte {
			if b, err := os.ReadFile(filepath.Join(dir, db)); err == nil {
				return b
			}
			_, out := cli(t, dir, "query", "--db", db, "--format", "csv", "select * from jobs")
			return []byte(out)
		}
		before := content()
		for file, want := range map[string]string{
			"type.csv":  `row 1, column "year": "notayear" is not a whole number`,
			"frac.csv":  `row 2, column "year": 2021.5 is not a whole number`,
			"cover.csv": `row 1, column "cover": "cloudy" is not a number`,
		} {
			code, out := cli(t, dir, "init", "--append", "--from", file, "--db", db, "--key", "tile")
			if code != exitUsage || !strings.Contains(out, file) || !strings.Contains(out, want) || !strings.Contains(out, "nothing was added") {
				t.Errorf("%s: append %s: exit %d, want %d and %q:\n%s", db, file, code, exitUsage, want, out)
			}
			if after := content(); !bytes.Equal(before, after) {
				t.Fatalf("%s: a refused append of %s changed the table", db, file)
			}
		}
		// A whole number fits a column of numbers.
		if code, out := cli(t, dir, "init", "--append", "--from", "ok.csv", "--db", db, "--key", "tile"); code != 0 {
			t.Errorf("%s: append ok.csv: exit %d: %s", db, code, out)
		}
		code, out := cli(t, dir, "query", "--db", db, "--format", "csv", "select tile, year, cover from jobs")
		if want := "tile,year,cover\nA,2020,0.5\nB,2020,1\nL,2022,2\n"; code != 0 || out != want {
			t.Errorf("%s: after the append: exit %d\n%s\nwant\n%s", db, code, out, want)
		}
	}
}

// A SQLite table another program wrote with text and whole numbers in one
// column (SQLite allows it) is read with that column as text by query and
// jobs --where, instead of failing.
func TestQueryMixedSQLiteColumn(t *testing.T) {
	dir := t.TempDir()
	lite, err := sql.Open("sqlite", filepath.Join(dir, "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE jobs (tile TEXT, year)",
		"INSERT INTO jobs VALUES ('A', 2020), ('B', 2021.5), ('H', 'notayear'), ('N', NULL)",
	} {
		if _, err := lite.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	lite.Close()
	code, out := cli(t, dir, "query", "--db", "m.db", "--format", "csv", "select tile, year, typeof(year) as t from jobs")
	if want := "tile,year,t\nA,2020,VARCHAR\nB,2021.5,VARCHAR\nH,notayear,VARCHAR\nN,,VARCHAR\n"; code != 0 || out != want {
		t.Errorf("query: exit %d\n%s\nwant\n%s", code, out, want)
	}
	code, out = cli(t, dir, "jobs", "--db", "m.db", "--where", "year like '20%'", "--columns", "tile")
	if code != 0 || !strings.Contains(out, "A") || !strings.Contains(out, "B") || strings.Contains(out, "H") {
		t.Errorf("jobs --where: exit %d\n%s", code, out)
	}
}
