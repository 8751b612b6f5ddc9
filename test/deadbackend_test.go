package test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
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

// TestRunBesideBackendWithoutCredentials: a back-end with no credentials
// at all is paused, with a warning naming its URL, the variables to set
// and `worker login URL`, while the other runs the rows; a login stored
// meanwhile is picked up, and the rows given to it run there.
func TestRunBesideBackendWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{QueueTime: 20 * time.Millisecond, RunTime: 40 * time.Millisecond})
	defer srv.Close()
	provider := remotetest.NewOIDCProvider(nil)
	defer provider.Close()
	locked := remotetest.NewServer(remotetest.Options{OIDC: provider, QueueTime: 20 * time.Millisecond, RunTime: 40 * time.Millisecond})
	defer locked.Close()

	dir := t.TempDir() // also $HOME: no login stored yet
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("year,title,backend_name\n2000,a,\n2001,b,\n2002,c,nocreds\n2003,d,\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(process), 0o644)
	if out, err := cmd(t.Context(), dir, nil, "init", "--from", "in.csv", "--db", "jobs.db").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	c := cmd(t.Context(), dir, fakeEnv, "run", "--db", "jobs.db",
		"--backend", "fake="+srv.URL+",parallel=3", "--backend", "nocreds="+locked.URL,
		"--process", "p.json", "--root-dir", "res", "--poll", "30ms")
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	c.Stdout = &stdout
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	sc := bufio.NewScanner(stderr)
	// The user logs in once the warning is out and the fake has started a
	// job, so the other back-end demonstrably ran while this one waited.
	warned, fakeStarted, loggedIn := false, false, false
	for sc.Scan() {
		line := sc.Text()
		logs.WriteString(line + "\n")
		if !warned && strings.Contains(line, "level=WARN") && strings.Contains(line, "backend=nocreds") {
			warned = true
			for _, want := range []string{locked.URL, "OPENEO_NOCREDS_TOKEN", "worker login " + locked.URL, "the other back-ends run"} {
				if !strings.Contains(line, want) {
					t.Errorf("warning does not say %q: %s", want, line)
				}
			}
		}
		if strings.Contains(line, `msg="job started"`) && strings.Contains(line, "backend=fake") {
			fakeStarted = true
		}
		if warned && fakeStarted && !loggedIn {
			loggedIn = true
			// As worker login stores it.
			store := &remote.TokenStore{Path: filepath.Join(dir, ".local", "share", "openeo-python-client", "refresh-tokens.json")}
			os.MkdirAll(filepath.Dir(store.Path), 0o700)
			if err := store.Put(provider.URL, provider.PublicClientID, provider.IssueRefreshToken()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if !warned {
		t.Errorf("no warning about the back-end without credentials:\n%s", logs.String())
	}
	onFake := 0
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		// Unpinned rows may go to nocreds once the login is picked up.
		if r.Status != driver.Finished || (r.Data["title"] == "c" && r.Backend != "nocreds") {
			t.Errorf("row %v: %s on %q, want finished (c on nocreds)", r.Data["title"], r.Status, r.Backend)
		}
		if r.Backend == "fake" {
			onFake++
		}
	}
	if onFake == 0 {
		t.Errorf("no row finished on fake while nocreds had no credentials")
	}
}
