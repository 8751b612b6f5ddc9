package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// statusJSON is what `worker status --json` prints.
type statusJSON struct {
	Total    int            `json:"total"`
	ByStatus map[string]int `json:"by_status"`
	Rows     []struct {
		Backend string `json:"backend_name"`
		Status  string `json:"status"`
		Count   int    `json:"count"`
	} `json:"by_backend_and_status"`
}

func readStatus(t *testing.T, dir string) statusJSON {
	t.Helper()
	var s statusJSON
	out := mustWork(t, dir, nil, "status", "--db", "jobs.db", "--json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s
}

// blockCounts are the columns of a back-end's line in the progress block:
// created, queued, running, finished, failed, rows.
type blockCounts [6]int

// expectedBlock computes each back-end's line, and the rows not started,
// from `worker status --json`.
func expectedBlock(s statusJSON) (map[string]blockCounts, int) {
	col := map[string]int{"queued_for_start": 0, "created": 0, "queued": 1, "running": 2, "finished": 3,
		"error": 4, "start_failed": 4, "canceled": 4}
	out := map[string]blockCounts{}
	for _, r := range s.Rows {
		if r.Backend == "" {
			continue
		}
		c := out[r.Backend]
		if i, ok := col[r.Status]; ok {
			c[i] += r.Count
		}
		c[5] += r.Count
		out[r.Backend] = c
	}
	return out, s.ByStatus["not_started"]
}

// parseBlock reads the back-end lines (named in names) and the "not
// started" line of the progress block on a screen; ok is false when a line
// is missing.
func parseBlock(screen string, names []string) (map[string]blockCounts, int, bool) {
	got := map[string]blockCounts{}
	notStarted := -1
	for _, line := range strings.Split(screen, "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && contains(names, f[0]) {
			var c blockCounts
			for i := range c {
				n, err := strconv.Atoi(f[i+1])
				if err != nil {
					return nil, 0, false
				}
				c[i] = n
			}
			got[f[0]] = c
		}
		if rest, ok := strings.CutPrefix(line, "not started: "); ok {
			n, _, _ := strings.Cut(rest, ",")
			notStarted, _ = strconv.Atoi(n)
		}
	}
	return got, notStarted, len(got) == len(names) && notStarted >= 0
}

func contains(names []string, s string) bool {
	for _, n := range names {
		if n == s {
			return true
		}
	}
	return false
}

// tmuxPane is a command running in a detached tmux session: a real
// terminal whose screen the test reads.
type tmuxPane struct {
	t    *testing.T
	sock string
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startInTerminal runs the worker binary with args in dir under tmux, in
// a terminal of 200x50, with a clean environment plus env. When it ends
// its exit status is written to dir/exit-status (whole once the file
// exists: it is renamed into place) and the pane stays open.
func startInTerminal(t *testing.T, dir string, env []string, args ...string) *tmuxPane {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("the terminal tests need tmux (apt-get install tmux; .ci/run installs it)")
	}
	words := []string{"env", "-i", "PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TERM=xterm-256color"}
	words = append(append(words, env...), workerBin)
	words = append(words, args...)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	script := "cd " + shellQuote(dir) + " && " + strings.Join(words, " ") + "; echo $? > exit-status.new; mv exit-status.new exit-status; exec sleep 3600"
	p := &tmuxPane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	c := exec.Command(tmux, "-S", p.sock, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", script)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TERM=xterm-256color"}
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", p.sock, "kill-server").Run() })
	return p
}

// screen returns what the terminal shows now.
func (p *tmuxPane) screen() string {
	out, err := exec.Command("tmux", "-S", p.sock, "capture-pane", "-p").Output()
	if err != nil {
		p.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// TestProgressOnTerminal runs `worker run` in a terminal against two fake
// back-ends whose clock stands still, so that the jobs stay queued: the
// block on the screen shows per back-end the counts `worker status
// --json` gives. Then the clock runs, the jobs end (one fails), and the
// screen shows the final counts, the failure as an event, and the
// summary; the exit status is 3.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	clock := newThawClock()
	opts := remotetest.Options{Clock: clock, QueueTime: 20 * time.Millisecond, RunTime: 20 * time.Millisecond,
		Outcome: func(j *remote.JobRequest) error {
			if j.Title == "row 5" {
				return errors.New("no data for row 5")
			}
			return nil
		}}
	a, b := remotetest.NewServer(opts), remotetest.NewServer(opts)
	defer a.Close()
	defer b.Close()
	dir := newTable(t, 6)
	p := startInTerminal(t, dir, []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"},
		"run", "--db", "jobs.db", "--backend", "fake1="+a.URL+",parallel=2", "--backend", "fake2="+b.URL+",parallel=2",
		"--process", "p.json", "--root-dir", "res", "--poll", "50ms")
	names := []string{"fake1", "fake2"}

	// Frozen: two jobs queued on each back-end, two rows waiting.
	waitFor(t, "four queued rows", func() bool { return readStatus(t, dir).ByStatus["queued"] == 4 })
	want, wantNotStarted := expectedBlock(readStatus(t, dir))
	if want["fake1"][1] != 2 || want["fake2"][1] != 2 || wantNotStarted != 2 {
		t.Fatalf("frozen state: %v, %d not started", want, wantNotStarted)
	}
	var screen string
	waitForScreen(t, p, "the block to show the frozen counts", func(s string) bool {
		screen = s
		got, notStarted, ok := parseBlock(s, names)
		return ok && got["fake1"] == want["fake1"] && got["fake2"] == want["fake2"] && notStarted == wantNotStarted
	})
	for _, w := range []string{"worker run jobs.db: 0 of 6 rows done", "next poll", "rate "} {
		if !strings.Contains(screen, w) {
			t.Errorf("screen lacks %q:\n%s", w, screen)
		}
	}

	clock.Thaw()
	waitForScreen(t, p, "the run to end", func(string) bool {
		_, err := os.Stat(filepath.Join(dir, "exit-status"))
		return err == nil
	})
	code, _ := os.ReadFile(filepath.Join(dir, "exit-status"))
	if strings.TrimSpace(string(code)) != "3" {
		t.Errorf("exit status %q, want 3 (a row in error)", code)
	}
	screen = p.screen()
	want, wantNotStarted = expectedBlock(readStatus(t, dir))
	got, notStarted, ok := parseBlock(screen, names)
	if !ok || got["fake1"] != want["fake1"] || got["fake2"] != want["fake2"] || notStarted != wantNotStarted {
		t.Errorf("final block %v (%d not started), status --json says %v (%d):\n%s", got, notStarted, want, wantNotStarted, screen)
	}
	for _, w := range []string{"6 of 6 rows done (finished 5, failed 1)", "recent events:", "failed", "wall time",
		"worker: 1 row ended in error", "worker retry runs them again"} {
		if !strings.Contains(screen, w) {
			t.Errorf("final screen lacks %q:\n%s", w, screen)
		}
	}
}

// waitForScreen polls the terminal until cond holds, or fails the test
// with the screen after a generous deadline (it asserts no timing).
func waitForScreen(t *testing.T, p *tmuxPane, what string, cond func(screen string) bool) {
	t.Helper()
	for range 6000 {
		if cond(p.screen()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s; the screen:\n%s", what, p.screen())
}

// summaryJSON is the part of `worker run --json` the tests read.
type summaryJSON struct {
	Total          int            `json:"total"`
	ByStatus       map[string]int `json:"by_status"`
	Stats          map[string]int `json:"stats"`
	RequestsTotal  int            `json:"requests_total"`
	JobsStarted    int            `json:"jobs_started"`
	Downloads      int            `json:"downloads"`
	CostsThisRun   float64        `json:"costs_this_run"`
	Halted         string         `json:"halted"`
	NotStartedLeft int            `json:"not_started_left"`
	ExitStatus     int            `json:"exit_status"`
}

// TestProgressLinesOffTerminal: off a terminal the run logs one
// "progress" line per poll, text or JSON, with no terminal control codes,
// and --json prints the summary as one JSON object.
func TestProgressLinesOffTerminal(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 10 * time.Millisecond, RunTime: 20 * time.Millisecond})
	defer srv.Close()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := newTable(t, 4)
			var stdout, stderr bytes.Buffer
			c := cmd(t.Context(), dir, fakeEnv, "run", "--db", "jobs.db", "--backend", "fake="+srv.URL+",parallel=2",
				"--process", "p.json", "--root-dir", "res", "--poll", "20ms", "--json", "--log-format", format)
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Run(); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			var sum summaryJSON
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("--json: %v\n%s", err, stdout.String())
			}
			if sum.Total != 4 || sum.ByStatus["finished"] != 4 || sum.JobsStarted != 4 || sum.Downloads != 4 ||
				sum.RequestsTotal == 0 || sum.CostsThisRun != 6 || sum.ExitStatus != 0 {
				t.Errorf("summary: %+v", sum)
			}
			if bytes.Contains(stderr.Bytes(), []byte("\x1b[")) {
				t.Errorf("terminal control codes off a terminal:\n%q", stderr.String())
			}
			var lines []string
			for _, l := range strings.Split(stderr.String(), "\n") {
				if format == "text" && strings.Contains(l, "msg=progress ") {
					lines = append(lines, l)
				}
				var rec map[string]any
				if format == "json" && json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "progress" {
					if _, ok := rec["backend_fake"].(map[string]any); !ok {
						t.Errorf("progress record without its back-end: %s", l)
					}
					lines = append(lines, l)
				}
			}
			if polls := sum.Stats["track_statuses"]; len(lines) != polls || polls == 0 {
				t.Errorf("%d progress lines for %d polls:\n%s", len(lines), polls, stderr.String())
			}
			last := lines[len(lines)-1]
			for _, w := range []string{"done", "total", "rate_per_min", "next_poll"} {
				if !strings.Contains(last, w) {
					t.Errorf("progress line lacks %q: %s", w, last)
				}
			}
		})
	}
}

// TestMaxCostsStopsLaunching: against a back-end that estimates 2 credits
// a job and reports them, --max-costs 5 starts two jobs, no more, leaves
// the other rows not_started and exits 4.
func TestMaxCostsStopsLaunching(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 10 * time.Millisecond, RunTime: 20 * time.Millisecond,
		Costs:    func(*remote.JobRequest) float64 { return 2 },
		Estimate: func(*remote.JobRequest) (float64, error) { return 2, nil },
	})
	defer srv.Close()
	dir := newTable(t, 6)
	out, errOut, code := work(t, dir, fakeEnv, "run", "--db", "jobs.db", "--backend", "fake="+srv.URL+",parallel=6",
		"--process", "p.json", "--root-dir", "res", "--poll", "20ms", "--max-costs", "5", "--json")
	if code != 4 {
		t.Fatalf("exit %d, want 4\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var sum summaryJSON
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err, out)
	}
	if sum.ExitStatus != 4 || sum.NotStartedLeft != 4 || !strings.Contains(sum.Halted, "budget of 5 credits") || sum.JobsStarted != 2 {
		t.Errorf("summary: %+v", sum)
	}
	text, _, _ := work(t, newTable(t, 1), fakeEnv, "run", "--db", "jobs.db", "--backend", "fake="+srv.URL,
		"--process", "p.json", "--root-dir", "res", "--poll", "20ms", "--max-costs", "1")
	if !strings.Contains(text, "Launching stopped: budget of 1 credits reached") {
		t.Errorf("the summary does not say why launching stopped:\n%s", text)
	}
	if !strings.Contains(errOut, "--max-costs") || !strings.Contains(errOut, "4 rows left not_started") {
		t.Errorf("stderr does not say why:\n%s", errOut)
	}
	started := 0
	for _, j := range srv.Jobs() {
		if !j.Started {
			t.Errorf("job %s left created", j.ID)
		}
		started++
	}
	if started != 2 {
		t.Errorf("%d jobs on the back-end, want 2", started)
	}
	if s := readStatus(t, dir); s.ByStatus["not_started"] != 4 || s.ByStatus["finished"] != 2 {
		t.Errorf("status: %v", s.ByStatus)
	}
}

// TestExitStatuses checks the exit statuses of run through the binary:
// 0, 3 (a row in error), 4 (--max-jobs), 1 with advice for a refused
// token, 143 for SIGTERM and 130 for SIGINT; and that --help lists them.
func TestExitStatuses(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 10 * time.Millisecond, RunTime: 20 * time.Millisecond,
		Outcome: func(j *remote.JobRequest) error {
			if strings.HasPrefix(j.Title, "bad") {
				return errors.New("bad row")
			}
			return nil
		}})
	defer srv.Close()
	runArgs := []string{"run", "--db", "jobs.db", "--backend", "fake=" + srv.URL + ",parallel=3",
		"--process", "p.json", "--root-dir", "res", "--poll", "20ms"}

	dir := newTable(t, 2)
	if _, errOut, code := work(t, dir, fakeEnv, runArgs...); code != 0 {
		t.Errorf("all finished: exit %d\n%s", code, errOut)
	}

	dir = newTable(t, 3)
	os.WriteFile(filepath.Join(dir, "in2.csv"), []byte("year,title\n1999,bad row\n"), 0o644)
	mustWork(t, dir, nil, "init", "--append", "--from", "in2.csv", "--db", "jobs.db", "--key", "title")
	if _, errOut, code := work(t, dir, fakeEnv, runArgs...); code != 3 || !strings.Contains(errOut, "1 row ended in error") {
		t.Errorf("a row in error: exit %d, want 3\n%s", code, errOut)
	}

	dir = newTable(t, 3)
	if _, errOut, code := work(t, dir, fakeEnv, append(runArgs, "--max-jobs", "1")...); code != 4 || !strings.Contains(errOut, "--max-jobs") {
		t.Errorf("--max-jobs 1: exit %d, want 4\n%s", code, errOut)
	}
	if s := readStatus(t, dir); s.ByStatus["not_started"] != 2 || s.ByStatus["finished"] != 1 {
		t.Errorf("--max-jobs 1 left %v", s.ByStatus)
	}

	_, errOut, code := work(t, dir, []string{"OPENEO_FAKE_TOKEN=basic//nope"}, runArgs...)
	if code != 1 || !strings.Contains(errOut, "refuses the token in OPENEO_FAKE_TOKEN") || !strings.Contains(errOut, "worker login "+srv.URL) {
		t.Errorf("refused token: exit %d\n%s", code, errOut)
	}

	slow := remotetest.NewServer(remotetest.Options{QueueTime: 10 * time.Millisecond, RunTime: time.Hour})
	defer slow.Close()
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		dir := newTable(t, 1)
		c := cmd(t.Context(), dir, fakeEnv, "run", "--db", "jobs.db", "--backend", "fake="+slow.URL,
			"--process", "p.json", "--poll", "20ms")
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a running row", func() bool { return readStatus(t, dir).ByStatus["running"] == 1 })
		c.Process.Signal(sig)
		if code := exitCode(c.Wait()); code != want {
			t.Errorf("%v: exit %d, want %d\n%s", sig, code, want, errOut.String())
		}
	}

	out := mustWork(t, t.TempDir(), nil, "--help")
	for _, w := range []string{"3    run ended with rows in error", "4    run stopped launching at --max-costs", "143 by SIGTERM"} {
		if !strings.Contains(out, w) {
			t.Errorf("worker --help lacks %q", w)
		}
	}
	_, help, _ := work(t, t.TempDir(), nil, "run", "--help")
	for _, w := range []string{"Exit status: 0 every row finished", "-max-costs", "-max-jobs", "-json"} {
		if !strings.Contains(help, w) {
			t.Errorf("worker run --help lacks %q", w)
		}
	}
}

// TestDemoOnTerminal: worker demo shows the same block as worker run.
func TestDemoOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startInTerminal(t, dir, nil, "demo", "--dir", "out", "--rows", "6")
	waitForScreen(t, p, "the demo to end", func(string) bool {
		_, err := os.Stat(filepath.Join(dir, "exit-status"))
		return err == nil
	})
	screen := p.screen()
	got, notStarted, ok := parseBlock(screen, []string{"sim1", "sim2"})
	// One tile of six fails; the rows spread over both back-ends.
	if !ok || notStarted != 0 || got["sim1"][3]+got["sim2"][3] != 5 || got["sim1"][4]+got["sim2"][4] != 1 ||
		got["sim1"][5]+got["sim2"][5] != 6 {
		t.Errorf("final block %v, %d not started:\n%s", got, notStarted, screen)
	}
	for _, w := range []string{"worker demo: 6 of 6 rows done", "Ran 6 jobs"} {
		if !strings.Contains(screen, w) {
			t.Errorf("screen lacks %q:\n%s", w, screen)
		}
	}
}
