package test

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestRunBesideDeadBackends: one back-end refuses connections and another
// refuses our credentials from the start; the run takes every row on the
// healthy one and names the others' URL and cause in its warnings.
func TestRunBesideDeadBackends(t *testing.T) {
	t.Parallel()
	const rows = 8
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 20 * time.Millisecond, RunTime: 40 * time.Millisecond})
	defer srv.Close()
	locked := remotetest.NewServer(remotetest.Options{})
	defer locked.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()

	dir := newTable(t, rows)
	env := []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password",
		"OPENEO_LOCKED_USERNAME=user", "OPENEO_LOCKED_PASSWORD=wrong"}
	var stdout, stderr bytes.Buffer
	c := cmd(t.Context(), dir, env, "run", "--db", "jobs.db",
		"--backend", "dead="+deadURL, "--backend", "fake="+srv.URL+",parallel=3", "--backend", "locked="+locked.URL,
		"--process", "p.json", "--root-dir", "res", "--poll", "30ms")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Finished || r.Backend != "fake" || r.DownloadPending {
			t.Errorf("row %v: %s on %q, pending %v", r.Data["title"], r.Status, r.Backend, r.DownloadPending)
		}
	}
	oneJobPerRow(t, srv, rows)
	logs := stderr.String()
	for _, want := range [][]string{{"backend=dead", deadURL, "connection refused"}, {"backend=locked", locked.URL, "CredentialsInvalid"}} {
		found := false
		for line := range strings.Lines(logs) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, want[0]) &&
				strings.Contains(line, want[1]) && strings.Contains(line, want[2]) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning with %q:\n%s", want, logs)
		}
	}
	// Off a terminal, the one "progress" line per poll names the pause of
	// the back-ends dead from the start.
	lines := 0
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, "msg=progress") {
			continue
		}
		lines++
		for _, name := range []string{"dead", "locked"} {
			if !strings.Contains(line, "backend_"+name+".paused=") {
				t.Errorf("progress line without %s's pause: %s", name, line)
			}
		}
	}
	if lines == 0 {
		t.Errorf("no progress line:\n%s", logs)
	}
}
