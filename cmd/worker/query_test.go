package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// query reads the table and nothing else: whatever the SQL, it writes no
// file, reads no other file, attaches no database, loads no extension and
// cannot lift that guard, on every table format.
func TestQueryIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title,year\na,2020\nb,2021\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.csv"), []byte("password\nhunter2\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	for _, to := range []string{"jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		if code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", to); code != 0 {
			t.Fatalf("export %s: %s", to, out)
		}
	}
	if code, out := cli(t, dir, "export", "--db", "jobs.db", "--to", "other.duckdb"); code != 0 {
		t.Fatal(out)
	}
	refused := []struct{ name, sql, leaves string }{
		{"copy to", "COPY (SELECT * FROM jobs) TO 'stolen.csv'", "stolen.csv"},
		{"copy to parquet", "COPY jobs TO 'stolen.parquet' (FORMAT parquet)", "stolen.parquet"},
		{"attach", "ATTACH 'other.duckdb' AS o", ""},
		{"attach new", "ATTACH 'made.duckdb' AS m", "made.duckdb"},
		{"read another file", "SELECT * FROM read_csv('secret.csv')", ""},
		{"read another file by name", "SELECT * FROM 'secret.csv'", ""},
		{"read text", "SELECT content FROM read_text('secret.csv')", ""},
		{"list files", "SELECT * FROM glob('*')", ""},
		{"export database", "EXPORT DATABASE 'dump'", "dump"},
		{"install", "INSTALL spatial", ""},
		{"load", "LOAD spatial", ""},
		{"lift the guard", "SET enable_external_access = true", ""},
		{"unlock", "SET lock_configuration = false", ""},
	}
	for _, db := range []string{"jobs.db", "jobs.csv", "jobs.parquet", "jobs.duckdb"} {
		t.Run(db, func(t *testing.T) {
			code, out := cli(t, dir, "query", "--db", db, "--format", "csv", "select title, year, status from jobs order by title")
			if want := "title,year,status\na,2020,not_started\nb,2021,not_started\n"; code != 0 || out != want {
				t.Errorf("plain query: exit %d\n%s\nwant\n%s", code, out, want)
			}
			for _, r := range refused {
				code, out := cli(t, dir, "query", "--db", db, r.sql)
				refusal := strings.Contains(out, "disabled") || strings.Contains(out, "locked")
				if code != 1 || !refusal || strings.Contains(out, "hunter2") {
					t.Errorf("%s: exit %d, want 1 and a refusal: %s", r.name, code, out)
				}
				// worker jobs --where runs the user's SQL in the same guarded view.
				if !strings.HasPrefix(r.sql, "SELECT") {
					continue
				}
				where := "(SELECT count(*) FROM (" + r.sql + ")) > 0"
				code, out = cli(t, dir, "jobs", "--db", db, "--where", where)
				if code == 0 || !(strings.Contains(out, "disabled") || strings.Contains(out, "locked")) || strings.Contains(out, "hunter2") {
					t.Errorf("jobs --where %s: exit %d, want a refusal: %s", r.name, code, out)
				}
			}
			for _, r := range refused {
				if r.leaves != "" {
					if _, err := os.Stat(filepath.Join(dir, r.leaves)); err == nil {
						t.Errorf("%s wrote %s", r.name, r.leaves)
						os.Remove(filepath.Join(dir, r.leaves))
					}
				}
			}
		})
	}
}
