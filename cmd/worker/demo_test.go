package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lineWatch is a writer that signals once it has been sent a line
// holding want.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestDemoServe: demo --serve starts the simulated back-ends, prints the
// worker run command for them, and serves until stopped; the command, run
// as printed with the printed credentials, runs the table to the end.
func TestDemoServe(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	out := &lineWatch{want: "Serving until Ctrl-C.", seen: make(chan struct{})}
	var errOut bytes.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"demo", "--serve", "--dir", dir, "--rows", "2"}, out, &errOut) }()
	select {
	case <-out.seen:
	case code := <-done:
		t.Fatalf("demo --serve ended with %d before serving:\n%s\n%s", code, out, errOut.String())
	}
	var runLine, exportLine string
	for line := range strings.SplitSeq(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "worker run ") {
			runLine = line
		}
		if strings.HasPrefix(line, "export ") {
			exportLine = line
		}
	}
	if runLine == "" || exportLine == "" || strings.ContainsAny(runLine, `'"`) {
		t.Fatalf("no plain worker run and export lines in:\n%s", out)
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(exportLine, "export ")) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	args := strings.Fields(strings.TrimPrefix(runLine, "worker "))
	if code, stdout, stderr := runCLI(t, args...); code != exitOK {
		t.Errorf("%s: exit %d\n%s\n%s", runLine, code, stdout, stderr)
	}
	for _, r := range readRows(t, dir+"/jobs.db") {
		if r.Status != "finished" || !strings.Contains(r.Backend, "sim") {
			t.Errorf("row %d: %s on %q after the run", r.Key, r.Status, r.Backend)
		}
	}
	stop()
	if code := <-done; code != exitOK || !strings.Contains(out.String(), "Stopped the simulated back-ends.") {
		t.Errorf("demo --serve after Ctrl-C: exit %d\n%s", code, out)
	}
}

// TestDemoDir: demo and demo --serve never touch a folder that holds files
// the demo did not write (no .worker-demo marker): exit 2, everything left
// as it was. A new folder is marked, and a marked one starts afresh.
func TestDemoDir(t *testing.T) {
	foreign := t.TempDir()
	keep := filepath.Join(foreign, "results", "job_x", "keep.tif")
	os.MkdirAll(filepath.Dir(keep), 0o755)
	os.WriteFile(keep, []byte("r"), 0o644)
	os.WriteFile(filepath.Join(foreign, "jobs.db"), []byte("mine"), 0o644)
	for _, args := range [][]string{{"demo", "--dir", foreign, "--rows", "2"}, {"demo", "--serve", "--dir", foreign, "--rows", "2"}} {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "--dir "+foreign) || !strings.Contains(errOut, ".worker-demo") {
			t.Errorf("%v: exit %d, %q; want 2 naming the folder and the marker", args, code, errOut)
		}
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "r" {
		t.Errorf("the folder's result was touched: %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "jobs.db")); string(b) != "mine" {
		t.Errorf("the folder's jobs.db was replaced")
	}
	entries, _ := os.ReadDir(foreign)
	if len(entries) != 2 {
		t.Errorf("the refused folder holds %d entries, want its 2", len(entries))
	}

	dir := filepath.Join(t.TempDir(), "new")
	if _, _, err := prepareDemo(t.Context(), dir, 2, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		t.Errorf("a new demo folder is not marked: %v", err)
	}
	left := filepath.Join(dir, "results", "job_old", "r.tif")
	os.MkdirAll(filepath.Dir(left), 0o755)
	os.WriteFile(left, []byte("old"), 0o644)
	if _, n, err := prepareDemo(t.Context(), dir, 3, io.Discard); err != nil || n != 3 {
		t.Fatalf("a second demo in its folder: %d rows, %v", n, err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("a second demo kept the earlier demo's results (%v)", err)
	}

	empty := t.TempDir()
	if _, _, err := prepareDemo(t.Context(), empty, 2, io.Discard); err != nil {
		t.Errorf("an empty folder: %v", err)
	}
}
