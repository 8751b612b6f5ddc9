package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every mistake in a command line exits 2 (bad usage), whatever the
// command, before any work: missing or unknown flags, bad flag values,
// missing, extra or malformed arguments.
func TestUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title\na\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"process_graph": {"n": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": true}}}`), 0o644)
	const be = "x=http://127.0.0.1:1"
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"init"},
		{"init", "--from", "in.csv"},
		{"init", "--from", "in.csv", "--db", "new.db", "stray"},
		{"init", "--from", "in.csv", "--db", "jobs.db", "--append"},
		{"init", "--bogus"},
		{"run", "--db", "jobs.db", "--process", "p.json"},
		{"run", "--db", "jobs.db", "--backend", be},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--process-id", "x"},
		{"run", "--db", "jobs.db", "--backend", "a=http://x,speed=3", "--process", "p.json"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--poll", "soon"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--log-format", "xml"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--max-start-attempts", "0"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--cancel-running-job-after", "-1h"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--poll", "0s"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--max-costs", "-1"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--max-jobs", "-1"},
		{"cancel", "--db", "jobs.db", "--backend", be, "--log-format", "xml"},
		{"download", "--db", "jobs.db", "--backend", be, "--log-format", "xml"},
		{"check", "--db", "jobs.db", "--process", "p.json", "--log-format", "xml"},
		{"run", "--db", "jobs.db", "--backend", be, "--process", "p.json", "--param", "nocolumn"},
		{"check", "--process", "p.json"},
		{"check", "--db", "jobs.db"},
		{"check", "--db", "jobs.db", "--process", "p.json", "--process-id", "x"},
		{"status"},
		{"status", "--db", "jobs.db", "stray"},
		{"jobs"},
		{"jobs", "--db", "jobs.db", "--status", "bogus"},
		{"jobs", "--db", "jobs.db", "--columns", "nope"},
		{"jobs", "--db", "jobs.db", "--where", "nonsense ((("},
		{"logs", "--db", "jobs.db", "--backend", be},
		{"logs", "1", "2", "--db", "jobs.db", "--backend", be},
		{"logs", "1", "--db", "jobs.db", "--backend", be, "--level", "loud"},
		{"retry"},
		{"retry", "--db", "jobs.db", "--status", "bogus"},
		{"retry", "--db", "jobs.db", "stray"},
		{"cancel", "--db", "jobs.db"},
		{"cancel", "--backend", be},
		{"cancel", "--db", "jobs.db", "--backend", be, "--status", "bogus"},
		{"cancel", "--db", "jobs.db", "--backend", be, "row-one"},
		{"download", "--db", "jobs.db"},
		{"download", "--backend", be},
		{"download", "--db", "jobs.db", "--backend", be, "stray"},
		{"query", "select 1"},
		{"query", "--db", "jobs.db"},
		{"query", "--db", "jobs.db", "select 1", "select 2"},
		{"query", "--db", "jobs.db", "--format", "xml", "select 1"},
		{"query", "--db", "jobs.db", "delete from jobs"},
		{"query", "--db", "jobs.db", "--json", "--format", "csv", "select 1"},
		{"export", "--db", "jobs.db"},
		{"export", "--db", "jobs.db", "--to", "x.csv", "stray"},
		{"export", "--db", "jobs.db", "--to", "stac", "--root-dir", "."},
		{"split"},
		{"split", "--area", "5,51,6,52", "--to", "tiles.csv"},
		{"login"},
		{"login", "http://a", "http://b"},
		{"demo", "--rows", "0"},
		{"demo", "stray"},
		{"version", "stray"},
		{"version", "--bogus"},
	} {
		if code, out := cli(t, dir, args...); code != exitUsage {
			t.Errorf("worker %q: exit %d, want %d:\n%s", args, code, exitUsage, out)
		}
	}
}
