package remote_test

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
)

// TestRetriesLoggedAtDebug: each retry of a request is logged at debug
// level with its method and URL; WithoutRetries sends it once.
func TestRetriesLoggedAtDebug(t *testing.T) {
	srv, n := script(t, []int{503, 500}, `{"id":"j","status":"created"}`)
	var logs bytes.Buffer
	c, err := remote.New(srv.URL, &remote.Options{Policy: &remote.Policy{
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetJob(remote.WithoutRetries(t.Context()), "j"); err == nil || n.Load() != 1 {
		t.Fatalf("sent once: %d requests, err %v; want 1 and the 503", n.Load(), err)
	}
	if _, err := c.GetJob(t.Context(), "j"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(logs.String(), "retrying request"); got != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "GET "+srv.URL) &&
		!strings.Contains(logs.String(), "url="+srv.URL) {
		t.Errorf("retry not logged at debug with its URL:\n%s", logs.String())
	}
}

// TestConnectUnreachable: Connect to a back-end that refuses connections
// fails, saying so, instead of taking the URL for the API root.
func TestConnectUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	_, err = remote.Connect(remote.WithoutRetries(t.Context()), u, nil)
	if err == nil || !remote.ConnectionFailed(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Connect: %v, want connection refused", err)
	}
}
