package main

import (
	"bytes"
	"context"
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
