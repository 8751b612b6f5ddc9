package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestBadFlagValueOneLine: a mistake on the command line prints its error
// once, and where to read the flags, not the whole usage; --help still
// prints it.
func TestBadFlagValueOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--db", "jobs.db", "--poll", "soon"},
		{"status", "--bogus"},
		{"split", "--tile-size", "big"},
	} {
		code, out, errOut := runCLI(t, args...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		hint := "Run 'worker " + args[0] + " --help' for its flags."
		if code != exitUsage || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "worker: ") || lines[1] != hint {
			t.Errorf("worker %q: exit %d, stderr:\n%s\nwant 2, one line of error and %q", args, code, errOut, hint)
		}
	}
	code, _, errOut := runCLI(t, "status", "--help")
	if code != exitOK || !strings.Contains(errOut, "Usage: worker status") || !strings.Contains(errOut, "Flags:") {
		t.Errorf("status --help: exit %d, %q", code, errOut)
	}
}

// TestWhereErrorShowsTheCondition: a bad --where shows the user's
// condition and DuckDB's message, not the SQL it is wrapped in.
func TestWhereErrorShowsTheCondition(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year\n2020\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	for _, c := range []struct{ where, want string }{
		{"nonsense(((", `--where "nonsense(((": Parser Error: syntax error at end of input`},
		{"colour = 'red'", "--where: colour = 'red'\n         ^"},
		{"year > 2000 and\ncolour = 'red'", "--where line 2: colour = 'red'\n                ^"},
	} {
		code, _, errOut := runCLI(t, "jobs", "--db", db, "--where", c.where)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "ORDER BY") || strings.Contains(errOut, "LINE ") {
			t.Errorf("--where %q: exit %d, stderr:\n%s\nwant 2 and %q, without our SQL", c.where, code, errOut, c.want)
		}
	}
}

// TestBackendListedTwice: two --backend of one name are refused before
// any request is sent to either.
func TestBackendListedTwice(t *testing.T) {
	a, b := remotetest.NewServer(remotetest.Options{}), remotetest.NewServer(remotetest.Options{})
	defer a.Close()
	defer b.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year\n2020\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	process := writeFile(t, dir, "p.json", doubleProcess)
	for _, cmd := range [][]string{
		{"run", "--db", db, "--process", process, "--backend", "x=" + a.URL, "--backend", "x=" + b.URL},
		{"download", "--db", db, "--backend", "x=" + a.URL, "--backend", "x=" + b.URL},
	} {
		code, _, errOut := runCLI(t, cmd...)
		if code != exitUsage || !strings.Contains(errOut, "back-end x is listed twice") {
			t.Errorf("%s: exit %d, %q; want 2 and listed twice", cmd[0], code, errOut)
		}
	}
	if n := a.TotalRequests() + b.TotalRequests(); n != 0 {
		t.Errorf("%d requests sent to the back-ends, want none", n)
	}
}

// TestVersionWithoutVCS: a test binary has no VCS information, as a build
// with -buildvcs=false has none; version says so, without claiming the
// build was made outside a git checkout.
func TestVersionWithoutVCS(t *testing.T) {
	if readVersion().Commit != "" {
		t.Skip("this binary has VCS information")
	}
	code, out, _ := runCLI(t, "version")
	if code != exitOK || !strings.Contains(out, "no VCS information in the build (built outside a git checkout, or with -buildvcs=false)") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}

// TestRunFlagMistakes: a --backend option given twice and a --max-costs
// that is not a finite, non-negative number are bad usage (exit 2) naming
// the flag or option.
func TestRunFlagMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "a=http://127.0.0.1:1,parallel=3,parallel=4"}, "parallel"},
		{[]string{"--backend", "a=http://127.0.0.1:1", "--max-costs", "NaN"}, "--max-costs"},
		{[]string{"--backend", "a=http://127.0.0.1:1", "--max-costs", "Inf"}, "--max-costs"},
		{[]string{"--backend", "a=http://127.0.0.1:1", "--max-costs", "-1"}, "--max-costs"},
	} {
		args := append([]string{"run", "--db", "jobs.db", "--process-id", "p"}, c.args...)
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("worker %q: exit %d, stderr %q; want 2 naming %s", args, code, errOut, c.want)
		}
	}
}

// TestMessagesTidy: the table's name is said once ("k.db: no job table",
// not "k.db: k.db: ..."), and worker --help has a blank line before
// "Exit status:".
func TestMessagesTidy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "k.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year\n2020\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	empty := filepath.Join(dir, "empty.csv")
	writeFile(t, dir, "empty.csv", "")
	for _, loc := range []string{empty} {
		_, _, errOut := runCLI(t, "status", "--db", loc)
		if strings.Contains(errOut, loc+": "+loc) {
			t.Errorf("status: the table is named twice: %q", errOut)
		}
	}
	_, out, _ := runCLI(t, "--help")
	if !strings.Contains(out, "\n\nExit status:") {
		t.Errorf("worker --help: no blank line before Exit status:\n%s", out)
	}
}
