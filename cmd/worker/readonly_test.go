package main

import (
	"bytes"
	"crypto/md5"
	"database/sql"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver/postgres"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
)

// The commands that only read (query, status, jobs, export, serve) leave a
// table another program wrote as it was, byte for byte, on every format:
// they do not add the job columns (run, retry, cancel, download and
// init --append do), and yet see the table as those will.
func TestReadersLeaveForeignTables(t *testing.T) {
	dir := t.TempDir()
	// As the sqlite3 shell makes it: rollback journal, three columns.
	lite, err := sql.Open("sqlite", filepath.Join(dir, "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	for _, q := range []string{
		"CREATE TABLE jobs (tile TEXT, year INT, geometry TEXT)",
		"INSERT INTO jobs VALUES ('A', 2020, 'POINT (5 51)'), ('B', 2021, NULL)",
	} {
		if _, err := lite.Exec(q); err != nil {
			t.Fatal(err)
		}
		if _, err := duck.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	lite.Close()
	if _, err := duck.Exec("COPY jobs TO '" + filepath.Join(dir, "p.parquet") + "' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "p.csv"), []byte("tile,year,geometry\nA,2020,POINT (5 51)\nB,2021,\n"), 0o644)
	for _, db := range []string{"p.db", "p.parquet", "p.csv"} {
		sum := func() [16]byte {
			b, err := os.ReadFile(filepath.Join(dir, db))
			if err != nil {
				t.Fatal(err)
			}
			return md5.Sum(b)
		}
		before := sum()
		for _, args := range [][]string{
			{"query", "--db", db, "select count(*) as n from jobs"},
			{"query", "--db", db, "--format", "csv", "select tile, status, attempts from jobs"},
			{"status", "--db", db},
			{"status", "--db", db, "--json"},
			{"jobs", "--db", db},
			{"jobs", "--db", db, "--status", "not_started", "--where", "year > 2020"},
			{"export", "--db", db, "--to", "out-" + strings.ReplaceAll(db, ".", "-") + ".csv"},
		} {
			code, out := cli(t, dir, args...)
			if code != 0 {
				t.Errorf("%s: exit %d: %s", strings.Join(args, " "), code, out)
			}
			if args[0] == "query" && args[3] == "csv" && out != "tile,status,attempts\nA,not_started,0\nB,not_started,0\n" {
				t.Errorf("%s: %q", strings.Join(args, " "), out)
			}
			if args[0] == "jobs" && len(args) > 3 && (!strings.Contains(out, "B") || strings.Contains(out, "A ")) {
				t.Errorf("%s:\n%s", strings.Join(args, " "), out)
			}
			if sum() != before {
				t.Fatalf("%s changed %s", strings.Join(args, " "), db)
			}
		}
		base := startServe(t, "--db", filepath.Join(dir, db))
		res, err := http.Get(base + "/api/data")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Contains(body, []byte("not_started")) {
			t.Errorf("serve %s: %d %s", db, res.StatusCode, body)
		}
		if sum() != before {
			t.Errorf("serve changed %s", db)
		}
	}
}

// The same on PostgreSQL, where the table's columns are the schema: after
// the readers, the table psql made has its three columns still; then
// init --append, a writer, adopts it and adds its rows.
func TestReadersLeaveForeignPostgresTable(t *testing.T) {
	loc := pgtest.Location(t)
	conn, table, err := postgres.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", conn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := `"` + table + `"`
	for _, s := range []string{"CREATE TABLE " + q + " (tile text, year int, geometry text)",
		"INSERT INTO " + q + " VALUES ('A', 2020, 'POINT (5 51)'), ('B', 2021, NULL)"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	columns := func() int {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM information_schema.columns WHERE table_name = $1", table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"query", "--db", loc, "--format", "csv", "select tile, status, attempts from jobs"},
		{"status", "--db", loc, "--json"},
		{"jobs", "--db", loc, "--where", "year > 2020"},
		{"export", "--db", loc, "--to", "out.csv"},
	} {
		code, out := cli(t, dir, args...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", args[0], code, out)
		}
		if args[0] == "query" && out != "tile,status,attempts\nA,not_started,0\nB,not_started,0\n" {
			t.Errorf("query: %q", out)
		}
		if n := columns(); n != 3 {
			t.Fatalf("%s gave the table %d columns", args[0], n)
		}
	}
	os.WriteFile(filepath.Join(dir, "more.csv"), []byte("tile,year\nC,2022\n"), 0o644)
	if code, out := cli(t, dir, "init", "--append", "--from", "more.csv", "--db", loc, "--key", "tile"); code != 0 {
		t.Errorf("init --append: exit %d: %s", code, out)
	}
	if code, out := cli(t, dir, "query", "--db", loc, "--format", "csv", "select tile, year from jobs"); code != 0 || out != "tile,year\nA,2020\nB,2021\nC,2022\n" {
		t.Errorf("after the append: exit %d: %q", code, out)
	}
}
