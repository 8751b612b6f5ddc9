package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// Credentials the Python client's `openeo-auth add-basic URL` stored are
// used for the same URL; the environment still comes first.
func TestConnectWithAuthConfig(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{Username: "john", Password: "j0hn123"})
	defer srv.Close()
	dir := t.TempDir()
	doc, _ := json.Marshal(map[string]any{"backends": map[string]any{
		srv.URL: map[string]any{"basic": map[string]any{"username": "john", "password": "j0hn123"}},
	}})
	path := filepath.Join(dir, "auth-config.json")
	os.WriteFile(path, doc, 0o600)
	env := map[string]string{"OPENEO_CONFIG_HOME": dir}
	getenv := func(k string) string { return env[k] }

	spec := backendSpec{name: "x", url: srv.URL + "/"}
	c, err := connectBackend(t.Context(), spec, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListJobs(t.Context(), 1); err != nil {
		t.Errorf("authenticated from auth-config.json: %v", err)
	}

	env["OPENEO_X_USERNAME"], env["OPENEO_X_PASSWORD"] = "john", "wrong"
	if _, err := connectBackend(t.Context(), spec, getenv); err == nil || !strings.Contains(err.Error(), "OPENEO_X_USERNAME") {
		t.Errorf("the environment comes first: err = %v", err)
	}
	delete(env, "OPENEO_X_USERNAME")
	if _, err := connectBackend(t.Context(), spec, getenv); err == nil || !strings.Contains(err.Error(), "OPENEO_X_PASSWORD is set but OPENEO_X_USERNAME is not") {
		t.Errorf("half a pair of credentials: err = %v", err)
	}
	delete(env, "OPENEO_X_PASSWORD")

	os.Chmod(path, 0o644)
	if _, err := connectBackend(t.Context(), spec, getenv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a file others may read: err = %v", err)
	}
}

// status, query and export only read: they take no writer's lock or work
// file, so a run can always start beside them.
func TestReadersTakeNoWriterRole(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title\na\nb\n"), 0o644)
	for _, db := range []string{"jobs.csv", "jobs.parquet"} {
		if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", db); code != 0 {
			t.Fatal(out)
		}
		for _, args := range [][]string{
			{"status", "--db", db},
			{"query", "--db", db, "select count(*) from jobs"},
			{"export", "--db", db, "--to", "out-" + db + ".geojson"},
		} {
			if code, out := cli(t, dir, args...); code != 0 {
				t.Fatalf("%v: %s", args, out)
			}
			for _, left := range []string{db + ".lock", db + ".work.duckdb"} {
				if _, err := os.Stat(filepath.Join(dir, left)); err == nil {
					t.Errorf("%v made %s", args, left)
					os.Remove(filepath.Join(dir, left))
				}
			}
		}
	}
}

// A back-end with no credentials at all is one to connect to again later
// (retryLater), not a reason to stop the run; the error names the
// variables to set and `worker login URL`; and a login stored meanwhile
// (as `worker login` stores it) is picked up by the next connect.
func TestConnectWithoutCredentials(t *testing.T) {
	provider := remotetest.NewOIDCProvider(nil)
	defer provider.Close()
	srv := remotetest.NewServer(remotetest.Options{OIDC: provider})
	defer srv.Close()
	dir := t.TempDir()
	env := map[string]string{"HOME": dir}
	getenv := func(k string) string { return env[k] }
	spec := backendSpec{name: "x", url: srv.URL}
	_, err := connectBackend(t.Context(), spec, getenv)
	if err == nil || !retryLater(err) {
		t.Fatalf("no credentials: err = %v, retry later %v", err, err != nil && retryLater(err))
	}
	for _, want := range []string{"OPENEO_X_TOKEN", "OPENEO_X_USERNAME", "worker login " + srv.URL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if !allNoCredentials([]error{err}) {
		t.Error("allNoCredentials is false for a back-end without credentials")
	}

	store, err := remote.DefaultTokenStore(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(provider.URL, provider.PublicClientID, provider.IssueRefreshToken()); err != nil {
		t.Fatal(err)
	}
	c, err := connectBackend(t.Context(), spec, getenv)
	if err != nil {
		t.Fatalf("after a login: %v", err)
	}
	if _, err := c.ListJobs(t.Context(), 1); err != nil {
		t.Errorf("after a login: %v", err)
	}
}

// TestRunJSONListsMissingResults: run --json always has missing_results,
// an empty list when every result is there, as the README says.
func TestRunJSONListsMissingResults(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	t.Setenv("OPENEO_FAKE_TOKEN", srv.ValidToken())
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "run", "--db", db, "--backend", "fake="+srv.URL, "--process", writeFile(t, dir, "p.json", doubleProcess),
		"--root-dir", filepath.Join(dir, "res"), "--poll", "10ms", "--json")
	var sum map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil {
		t.Fatalf("run --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if got := string(sum["missing_results"]); got != "[]" {
		t.Errorf("missing_results = %q, want []", got)
	}
}

// TestRunNotOpenEOBackendPaused: a back-end that is not openEO (a web
// server's 404 page at /credentials/basic, or a 200 without access_token)
// is paused like one answering 500, with a one-line message that asks
// whether it is an openEO back-end; the run finishes on the other one.
func TestRunNotOpenEOBackendPaused(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	pages := map[string]http.HandlerFunc{
		"html404": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<!DOCTYPE HTML>\n<html>\n<head><title>Error response</title></head>\n<body>\n<h1>Error response</h1>\n"+strings.Repeat("<p>Nothing matches the given URI</p>\n", 20)+"</body></html>\n")
		},
		"json200": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"hello":"world"}`)
		},
	}
	for name, page := range pages {
		t.Run(name, func(t *testing.T) {
			web := httptest.NewServer(page)
			defer web.Close()
			t.Setenv("OPENEO_USERNAME", "user")
			t.Setenv("OPENEO_PASSWORD", "password")
			dir := t.TempDir()
			db := filepath.Join(dir, "jobs.db")
			if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n2021,b\n"), "--db", db); code != 0 {
				t.Fatalf("init: %d %s %s", code, out, errOut)
			}
			code, out, errOut := runCLI(t, "run", "--db", db, "--backend", "fake="+srv.URL, "--backend", "web="+web.URL,
				"--process", writeFile(t, dir, "p.json", doubleProcess), "--root-dir", filepath.Join(dir, "res"), "--poll", "10ms")
			if code != 0 {
				t.Fatalf("run: exit %d, want 0 (finished on fake)\n%s\n%s", code, out, errOut)
			}
			var warn string
			for line := range strings.Lines(errOut) {
				if strings.Contains(line, "web") && strings.Contains(line, "WARN") {
					warn = line
				}
			}
			if !strings.Contains(warn, "is this an openEO back-end?") || !strings.Contains(warn, web.URL) {
				t.Errorf("no warning asking whether %s is openEO:\n%s", web.URL, errOut)
			}
			if strings.Count(warn, "Nothing matches") > 5 || strings.Contains(errOut, "<html>\n") {
				t.Errorf("the warning dumps the page:\n%s", errOut)
			}
		})
	}
}

// TestNamespaceNotFoundIsBadInput: a --namespace URL that answers 404 is
// the user's mistake: exit 2, naming the URL, in check as in run.
func TestNamespaceNotFoundIsBadInput(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	u := web.URL + "/p/ndvi.json"
	code, _, errOut := runCLI(t, "check", "--db", db, "--namespace", u)
	if code != exitUsage || !strings.Contains(errOut, u) || !strings.Contains(errOut, "404") {
		t.Errorf("check --namespace (404): exit %d, want %d naming %s:\n%s", code, exitUsage, u, errOut)
	}
	t.Setenv("OPENEO_TOKEN", "t")
	code, _, errOut = runCLI(t, "run", "--db", db, "--backend", "x="+web.URL, "--namespace", u)
	if code != exitUsage || !strings.Contains(errOut, u) {
		t.Errorf("run --namespace (404): exit %d, want %d naming %s:\n%s", code, exitUsage, u, errOut)
	}
}

// notifyWriter collects what is written and closes seen once it contains
// want.
type notifyWriter struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	seen chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.b.String(), w.want)
	w.b.Write(p)
	if !had && strings.Contains(w.b.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

// TestRunInterruptedPrintsSummary: a run stopped by SIGINT or SIGTERM
// still prints its summary, with --json the object with exit_status 130
// or 143 and the outcome.
func TestRunInterruptedPrintsSummary(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{QueueTime: time.Hour})
	defer srv.Close()
	t.Setenv("OPENEO_FAKE_TOKEN", srv.ValidToken())
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "jobs.db")
			if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n2021,b\n"), "--db", db); code != 0 {
				t.Fatalf("init: %d %s %s", code, out, errOut)
			}
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			errOut := &notifyWriter{want: "job started", seen: make(chan struct{})}
			go func() {
				<-errOut.seen
				cancel(signalError{sig})
			}()
			var out bytes.Buffer
			code := run(ctx, []string{"run", "--db", db, "--backend", "fake=" + srv.URL, "--process", writeFile(t, dir, "p.json", doubleProcess),
				"--root-dir", filepath.Join(dir, "res"), "--poll", "10ms", "--json"}, &out, errOut)
			want := signalError{sig}.code()
			var sum struct {
				ExitStatus int    `json:"exit_status"`
				Outcome    string `json:"outcome"`
				Total      int    `json:"total"`
			}
			if err := json.Unmarshal(out.Bytes(), &sum); err != nil || code != want {
				t.Fatalf("exit %d (want %d), summary %v:\n%s\n%s", code, want, err, out.String(), errOut.b.String())
			}
			if sum.ExitStatus != want || !strings.Contains(sum.Outcome, "resume") || sum.Total != 2 {
				t.Errorf("summary %+v, want exit_status %d and an outcome that says how to resume", sum, want)
			}
		})
	}
}

// TestSecondRunOnFileTableSaysWhy: a second run on a CSV or Parquet table
// that another process writes is refused, saying that the format allows
// one run at a time and which formats may be shared.
func TestSecondRunOnFileTableSaysWhy(t *testing.T) {
	for _, ext := range []string{"csv", "parquet"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "jobs."+ext)
			if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n"), "--db", db); code != 0 {
				t.Fatalf("init: %d %s %s", code, out, errOut)
			}
			first, err := driver.Open(t.Context(), db) // the first run's writer
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			t.Setenv("OPENEO_TOKEN", "t")
			code, _, errOut := runCLI(t, "run", "--db", db, "--backend", "a=http://127.0.0.1:1", "--process", writeFile(t, dir, "p.json", doubleProcess))
			for _, want := range []string{"one run at a time", "SQLite or PostgreSQL"} {
				if code != exitError || !strings.Contains(errOut, want) {
					t.Errorf("second run: exit %d, want 1 saying %q:\n%s", code, want, errOut)
				}
			}
			if strings.Contains(errOut, "opened read-only") {
				t.Errorf("second run says it opened the table read-only:\n%s", errOut)
			}
		})
	}
}

// TestCancelSkipsEndedJobs: cancel asks each job's status first: a job
// that already ended (the table, held by a run, did not show it yet) is
// neither canceled nor counted, and the output says which rows it was.
func TestCancelSkipsEndedJobs(t *testing.T) {
	fast := remotetest.NewServer(remotetest.Options{}) // jobs end at once
	defer fast.Close()
	slow := remotetest.NewServer(remotetest.Options{QueueTime: time.Hour})
	defer slow.Close()
	t.Setenv("OPENEO_FAST_TOKEN", fast.ValidToken())
	t.Setenv("OPENEO_SLOW_TOKEN", slow.ValidToken())
	start := func(srv *remotetest.Server) string {
		c, err := remote.New(srv.APIURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(srv.ValidToken())
		id, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: remote.Process{ProcessGraph: map[string]any{
			"a": map[string]any{"process_id": "add", "arguments": map[string]any{"x": 1, "y": 1}, "result": true}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.StartJob(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetJob(t.Context(), id); err != nil { // the fake moves jobs on when asked
			t.Fatal(err)
		}
		return id
	}
	done, queued := start(fast), start(slow)
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	in := writeFile(t, dir, "in.csv", "title,status,id,backend_name\na,running,"+done+",fast\nb,queued,"+queued+",slow\n")
	if code, out, errOut := runCLI(t, "init", "--from", in, "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "cancel", "--db", db, "--backend", "fast="+fast.URL, "--backend", "slow="+slow.URL)
	if code != 0 || !strings.Contains(out, "1 of 2 jobs canceled; 1 had already ended (row 1)") {
		t.Errorf("cancel: exit %d, %q, want 1 of 2 canceled and row 1 already ended\n%s", code, out, errOut)
	}
	for route, n := range fast.Requests() {
		if strings.HasPrefix(route, "DELETE") && n > 0 {
			t.Errorf("the ended job was sent %s", route)
		}
	}
	if strings.Contains(errOut, "msg=canceled row=1") {
		t.Errorf("row 1 logged as canceled:\n%s", errOut)
	}
}

// TestLogsOfEarlierJob: worker logs JOB-ID finds a job id in a row's
// previous_ids (a retried row's earlier job) and reads its logs from the
// row's back-end.
func TestLogsOfEarlierJob(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	t.Setenv("OPENEO_FAKE_TOKEN", srv.ValidToken())
	c, err := remote.New(srv.APIURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.ValidToken())
	var ids []string
	for range 2 {
		id, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: remote.Process{ProcessGraph: map[string]any{
			"a": map[string]any{"process_id": "add", "arguments": map[string]any{"x": 1, "y": 1}, "result": true}}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	in := writeFile(t, dir, "in.csv", "title,status,id,backend_name,previous_ids\na,finished,"+ids[1]+",fake,\"[\"\""+ids[0]+"\"\"]\"\n")
	if code, out, errOut := runCLI(t, "init", "--from", in, "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "logs", ids[0], "--db", db, "--backend", "fake="+srv.URL, "--json")
	if code != 0 || !strings.HasPrefix(out, "[") {
		t.Errorf("logs of the earlier job %s: exit %d\n%s\n%s", ids[0], code, out, errOut)
	}
	if n := srv.Requests()["GET /jobs/{job_id}/logs"]; n != 1 {
		t.Errorf("%d log requests, want 1: %v", n, srv.Requests())
	}
	code, _, errOut = runCLI(t, "logs", "j-nowhere", "--db", db, "--backend", "fake="+srv.URL)
	if code == 0 || !strings.Contains(errOut, "previous_ids") {
		t.Errorf("logs of an unknown job: exit %d, %q", code, errOut)
	}
}

// TestRunBesideHangingBackend: worker run with a back-end that accepts
// connections but never answers runs the rows on the other one, without
// waiting for the hanging one's start-up timeout (worker.ConnectAll; the
// virtual-time test of the waiting is in package worker).
func TestRunBesideHangingBackend(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer hang.CloseClientConnections()
	defer close(release)
	t.Setenv("OPENEO_TOKEN", srv.ValidToken())
	dir := t.TempDir()
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", writeFile(t, dir, "in.csv", "year,title\n2020,a\n2021,b\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "run", "--db", db, "--backend", "fake="+srv.URL, "--backend", "hang="+hang.URL,
		"--process", writeFile(t, dir, "p.json", doubleProcess), "--root-dir", filepath.Join(dir, "res"), "--poll", "10ms", "--json")
	var sum struct {
		ByStatus map[string]int `json:"by_status"`
	}
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil || sum.ByStatus["finished"] != 2 {
		t.Fatalf("run: exit %d, %v, want both rows finished on fake\n%s\n%s", code, err, out, errOut)
	}
}
