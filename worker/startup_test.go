package worker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/worker"
)

// hangingDial connects to a peer that accepts the connection, reads
// whatever is sent and never answers, until the client hangs up.
//
// The peer is an in-memory connection (net.Pipe) made in the test's
// bubble, not a socket on 127.0.0.1: a goroutine blocked reading a socket
// that never answers is not durably blocked, so virtual time would stand
// still for ever (see virtual_test.go). The HTTP client, the transport
// and the timeouts are the real ones.
func hangingDial(context.Context, string, string) (net.Conn, error) {
	cli, srv := net.Pipe()
	go func() {
		io.Copy(io.Discard, srv)
		srv.Close()
	}()
	return cli, nil
}

// TestHangingBackendHoldsNothingAtStart: a back-end that accepts
// connections but never answers does not hold up the start of the run
// (worker run connects with ConnectAll): the healthy back-end's rows
// finish in the time they take alone (+10%), and the hanging one is
// named at warn level with its URL and cause.
func TestHangingBackendHoldsNothingAtStart(t *testing.T) {
	const rows = 12
	alone := runAlone(t, rows)
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, rows, cadenceOpts, "a")
		f.cfg.PollInterval = cadencePoll
		f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Second, 8*time.Second
		var logs logBuffer
		f.cfg.Logger = logs.logger()
		// Both given as worker run gives them: to be connected.
		srv := f.servers["a"]
		f.cfg.Backends[0].Client = nil
		f.cfg.Backends[0].Connect = func(ctx context.Context) (*remote.Client, error) {
			c, err := remote.Connect(ctx, srv.APIURL, &remote.Options{HTTPClient: virtualClient(f.clock)})
			if err != nil {
				return nil, err
			}
			c.SetToken(srv.ValidToken())
			return c, c.CheckAccess(ctx)
		}
		const hangURL = "http://127.0.0.1:9/openeo/1.2/"
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: hangingDial}}
		f.cfg.Backends = append(f.cfg.Backends, worker.Backend{Name: "hang", URL: hangURL, ParallelJobs: 2,
			Connect: func(ctx context.Context) (*remote.Client, error) {
				c, err := remote.Connect(ctx, hangURL, &remote.Options{HTTPClient: hc})
				if err != nil {
					return nil, err
				}
				c.SetToken("token")
				return c, c.CheckAccess(ctx)
			}})
		start := time.Now()
		errs := worker.ConnectAll(t.Context(), f.cfg.Backends, func([]string) { t.Error("waiting reported with a back-end connected") })
		if errs[0] != nil || !errors.Is(errs[1], worker.ErrStillConnecting) {
			t.Fatalf("ConnectAll: %v, want a connected and hang still connecting", errs)
		}
		if waited := time.Since(start); waited > 2*worker.StartupGrace {
			t.Errorf("ConnectAll waited %v for the hanging back-end", waited)
		}
		f.runFor(t, 10*time.Minute)
		took := time.Since(start)
		for _, r := range f.rows(t) {
			if r.Status != driver.Finished || r.Backend != "a" {
				t.Errorf("row %d: %s on %q, want finished on a", r.Key, r.Status, r.Backend)
			}
		}
		if took > alone*11/10 {
			t.Errorf("rows took %v with a hanging back-end beside, %v alone: more than 10%% longer", took, alone)
		}
		warn := ""
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "backend=hang") {
				warn = line
				break
			}
		}
		if !strings.Contains(warn, hangURL) || !strings.Contains(warn, "does not answer") {
			t.Errorf("no warning naming the hanging back-end's URL and cause; first: %q", warn)
		}
		t.Logf("%v alone, %v with a hanging back-end; %s", alone, took, warn)
	})
}

// TestConnectAllBoundsEveryAttempt: with no back-end answering, ConnectAll
// gives up after StartupTimeout, saying the back-end does not answer.
func TestConnectAllBoundsEveryAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: hangingDial}}
		bs := []worker.Backend{{Name: "hang", URL: "http://127.0.0.1:9/", Connect: func(ctx context.Context) (*remote.Client, error) {
			return remote.Connect(ctx, "http://127.0.0.1:9/", &remote.Options{HTTPClient: hc})
		}}}
		start := time.Now()
		var waited []string
		errs := worker.ConnectAll(t.Context(), bs, func(names []string) { waited = names })
		if len(waited) != 1 || waited[0] != "hang" {
			t.Errorf("waiting reported %q, want [hang]", waited)
		}
		if took := time.Since(start); took != worker.StartupTimeout {
			t.Errorf("ConnectAll took %v, want the start-up timeout %v", took, worker.StartupTimeout)
		}
		if errs[0] == nil || !strings.Contains(errs[0].Error(), "does not answer") {
			t.Errorf("error %v does not say the back-end does not answer", errs[0])
		}
	})
}
