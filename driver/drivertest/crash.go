package drivertest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/crashpoint"
)

// crashEnv tells a copy of the test binary which crash to undergo:
// "SCENARIO N PATH", to be killed at the Nth crash point of SCENARIO.
const crashEnv = "DRIVERTEST_CRASH"

// maxCrashPoints bounds the kills of one scenario; a scenario that still
// reaches a crash point after that many is an error.
const maxCrashPoints = 40

// crashRows is the table the crash scenarios work on.
func crashRows() [][]any {
	var rows [][]any
	for i := range 5 {
		rows = append(rows, []any{int64(2000 + i), fmt.Sprintf("T%03d", i)})
	}
	return rows
}

var crashColumns = []string{"year", "tile"}

// testCrashDuringOpen kills a process, a copy of the test binary, at each
// crash point in turn (driver/internal/crashpoint: the driver's own, and
// one between each two store calls) while it opens a table, changes it and
// closes it ("open"), or creates one and closes it ("init"). After each kill the table
// opens whole: every row there, each change made or not, never a table
// without rows; and once opened and closed again, it leaves the same files
// as a run that was never killed. The open after each kill, which finishes
// what the killed process left (a journal folded in, a work file
// published), is itself killed at each of the driver's crash points it
// reaches, and the table then opens whole too.
func (h harness) testCrashDuringOpen(t *testing.T) {
	if spec := os.Getenv(crashEnv); spec != "" {
		h.crashChild(t, spec)
		return
	}
	for _, scenario := range []string{"open", "init"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel() // each kills processes of its own, in folders of its own
			reopenKills := 0
			clean := h.crashFiles(t, scenario, 0, &reopenKills)
			kills := 0
			for n := 1; ; n++ {
				if n > maxCrashPoints {
					t.Fatalf("still reaching crash points after %d kills", maxCrashPoints)
				}
				files := h.crashFiles(t, scenario, n, &reopenKills)
				if files == nil {
					break // the child ran to its end: no crash point n
				}
				kills++
				if !slices.Equal(files, clean) {
					t.Errorf("killed at crash point %d, then opened and closed: files %v, want %v", n, files, clean)
				}
			}
			t.Logf("%s: killed at %d crash points; the open after a kill, at %d of its own", scenario, kills, reopenKills)
			if kills < 2 {
				t.Errorf("%s: killed at %d crash points, want at least the test's own", scenario, kills)
			}
		})
	}
}

// crashFiles prepares a table for scenario in a new folder, lets a child
// process run the scenario there, killed at crash point n (never when n is
// 0), checks the table it leaves, and returns the names of the files in the
// folder once the table was opened and closed again; nil if the child was
// not killed.
func (h harness) crashFiles(t *testing.T, scenario string, n int, reopenKills *int) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs"+h.ext)
	if h.opts.location != nil {
		path = h.opts.location(t)
	}
	ctx := t.Context()
	if scenario == "open" {
		s, err := h.open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Init(ctx, crashColumns, Rows(crashRows())); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	killed := false
	if n > 0 {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+exactRun(t.Name()), "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", crashEnv, scenario, n, path))
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && !exit.Exited():
			killed = true
		case err != nil:
			t.Fatalf("crash point %d: child failed: %v\n%s", n, err, out)
		}
	}
	if n > 0 && !killed {
		return nil
	}
	if n > 0 {
		*reopenKills += h.crashReopen(t, scenario, n, path)
	}

	s, err := h.open(ctx, path)
	if err != nil {
		t.Fatalf("%s, killed at crash point %d: open: %v", scenario, n, err)
	}
	jobs, err := s.Select(ctx, driver.Filter{})
	switch {
	case errors.Is(err, driver.ErrNoTable) && scenario == "init":
		// Killed before the table was made: it can be made now.
		if err := s.Init(ctx, crashColumns, Rows(crashRows())); err != nil {
			t.Fatalf("init, killed at crash point %d: Init again: %v", n, err)
		}
		if jobs, err = s.Select(ctx, driver.Filter{}); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatalf("%s, killed at crash point %d: %v", scenario, n, err)
	}
	checkCrashRows(t, fmt.Sprintf("%s, killed at crash point %d", scenario, n), jobs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if h.opts.location != nil {
		return []string{"a table on a server"} // no files to compare
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// crashAllEnv, set to 1, makes the crash case kill the open after each
// kill at every crash point of its own (a child per pair of points: slow
// for DuckDB under -race); without it, at one of them in turn.
const crashAllEnv = "WORKER_CRASH_ALL"

// crashReopen kills the open that follows the kill at crash point n at
// crash points of its own (the driver's, while it opens what the kill
// left, reads it and closes it: a journal folded in, a work file
// published), each time on a copy of the folder at path, and checks that
// the table then opens whole. With WORKER_CRASH_ALL=1 it tries each of
// the open's crash points; else only its point (n-1)%4+1, or its first if
// it has fewer, so that over the kills of one case the open's first four
// points are each tried at one child per kill.
func (h harness) crashReopen(t *testing.T, scenario string, n int, path string) (kills int) {
	t.Helper()
	ctx := t.Context()
	first, only := 1, 0
	if os.Getenv(crashAllEnv) != "1" {
		first, only = (n-1)%4+1, (n-1)%4+1
	}
	for m := first; ; m++ {
		if only != 0 && m > only {
			return kills
		}
		if m > maxCrashPoints {
			t.Fatalf("%s, killed at crash point %d: the next open still reaches crash points after %d kills", scenario, n, maxCrashPoints)
		}
		copied := path
		if h.opts.location == nil {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(filepath.Dir(path))); err != nil {
				t.Fatal(err)
			}
			copied = filepath.Join(dir, filepath.Base(path))
		} // a server's table cannot be copied: the open after the kill works on it
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+exactRun(t.Name()), "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", crashEnv, "reopen", m, copied))
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && !exit.Exited():
		case err != nil:
			t.Fatalf("%s, killed at crash point %d, then the next open killed at its crash point %d: child failed: %v\n%s", scenario, n, m, err, out)
		default:
			if only != 0 && m > 1 && kills == 0 {
				// Fewer points than the one in turn: take its first.
				only, m = 1, 0
				continue
			}
			return kills // the open ran to its end: no crash point m
		}
		kills++
		what := fmt.Sprintf("%s, killed at crash point %d, then the next open killed at its crash point %d", scenario, n, m)
		s, err := h.open(ctx, copied)
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		jobs, err := s.Select(ctx, driver.Filter{})
		if err == nil {
			checkCrashRows(t, what, jobs)
		} else if !errors.Is(err, driver.ErrNoTable) || scenario != "init" {
			t.Errorf("%s: %v", what, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: close: %v", what, err)
		}
	}
}

// checkCrashRows checks a table after a kill: every row, with its data;
// the child's changes, each made whole or not at all, in order.
func checkCrashRows(t *testing.T, what string, jobs []driver.Job) {
	t.Helper()
	want := crashRows()
	if len(jobs) != len(want) {
		t.Fatalf("%s: %d rows, want %d: %+v", what, len(jobs), len(want), jobs)
	}
	for i, j := range jobs {
		if j.Data["year"] != want[i][0] || j.Data["tile"] != want[i][1] {
			t.Errorf("%s: row %d data %v, want %v", what, i+1, j.Data, want[i])
		}
	}
	first := jobs[0].Status == driver.Running && jobs[0].ID == "j-1" && jobs[0].Attempts == 1
	if !first && (jobs[0].Status != driver.NotStarted || jobs[0].ID != "" || jobs[0].Attempts != 0) {
		t.Errorf("%s: row 1 half changed: %+v", what, jobs[0])
	}
	second := jobs[1].Status == driver.Finished && jobs[1].DownloadPending
	if !second && (jobs[1].Status != driver.NotStarted || jobs[1].DownloadPending) {
		t.Errorf("%s: row 2 half changed: %+v", what, jobs[1])
	}
	if second && !first {
		t.Errorf("%s: the second change was kept without the first", what)
	}
}

// crashChild is the killed process: it counts crash points, the driver's
// and its own between store calls, and kills itself at the chosen one.
func (h harness) crashChild(t *testing.T, spec string) {
	f := strings.SplitN(spec, " ", 3)
	if len(f) != 3 {
		t.Fatalf("%s=%q: want SCENARIO N PATH", crashEnv, spec)
	}
	at, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	scenario, path := f[0], f[2]
	hits := 0
	crashpoint.Hook = func(name string) {
		hits++
		if hits == at {
			p, _ := os.FindProcess(os.Getpid())
			p.Kill() // SIGKILL where there are signals: no deferred call runs
			select {}
		}
	}
	defer func() { crashpoint.Hook = nil }()
	ctx := t.Context()
	s, err := h.open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if scenario == "reopen" {
		// The open after a kill: only the driver's own crash points.
		if _, err := s.Select(ctx, driver.Filter{}); err != nil && !errors.Is(err, driver.ErrNoTable) {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	crashpoint.Hit("drivertest: opened")
	if scenario == "init" {
		// Changes after Init go the way "open" tests them.
		if err := s.Init(ctx, crashColumns, Rows(crashRows())); err != nil {
			t.Fatal(err)
		}
		crashpoint.Hit("drivertest: made")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	jobs, err := s.Select(ctx, driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, driver.Update{Key: jobs[0].Key, Set: driver.Values{
		driver.ColStatus: driver.Running, driver.ColID: "j-1", driver.ColAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	crashpoint.Hit("drivertest: first change")
	if f, ok := s.(driver.Flusher); ok {
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		crashpoint.Hit("drivertest: flushed")
	}
	if err := s.Update(ctx, driver.Update{Key: jobs[1].Key, Set: driver.Values{
		driver.ColStatus: driver.Finished, driver.ColDownloadPending: true}}); err != nil {
		t.Fatal(err)
	}
	crashpoint.Hit("drivertest: second change")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// exactRun is a -test.run pattern that selects the test called name only.
func exactRun(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
