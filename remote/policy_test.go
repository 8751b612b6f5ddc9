package remote_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// script answers requests from a list of statuses, then 200 with body.
func script(t *testing.T, statuses []int, body string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			if statuses[i] == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0")
			}
			w.WriteHeader(statuses[i])
			return
		}
		w.Header().Set("OpenEO-Identifier", "j-1")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetryOnlyWhatIsSafe(t *testing.T) {
	job := &remote.JobRequest{Process: graph()}
	tests := []struct {
		name     string
		statuses []int
		do       func(c *remote.Client) error
		wantReqs int32
		wantErr  bool
	}{
		{"GET retried on 500, 502, 504", []int{500, 502, 504}, func(c *remote.Client) error { _, err := c.GetJob(t.Context(), "j"); return err }, 4, false},
		{"GET not retried on 400", []int{400}, func(c *remote.Client) error { _, err := c.GetJob(t.Context(), "j"); return err }, 1, true},
		{"create retried on 429: not processed", []int{429, 429}, func(c *remote.Client) error { _, err := c.CreateJob(t.Context(), job); return err }, 3, false},
		{"create not repeated blindly on 500", []int{500}, func(c *remote.Client) error { _, err := c.CreateJob(t.Context(), job); return err }, 1, true},
		{"create not repeated blindly on 503", []int{503}, func(c *remote.Client) error { _, err := c.CreateJob(t.Context(), job); return err }, 1, true},
		{"start not repeated blindly on 502", []int{502}, func(c *remote.Client) error { return c.StartJob(t.Context(), "j") }, 1, true},
		{"start retried on 429", []int{429, 429}, func(c *remote.Client) error { return c.StartJob(t.Context(), "j") }, 3, false},
		{"DELETE retried on 503", []int{503}, func(c *remote.Client) error { return c.CancelJob(t.Context(), "j") }, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := script(t, tt.statuses, `{"id":"j","status":"created"}`)
			c, _ := remote.New(srv.URL, fast())
			c.SetToken("basic//t")
			err := tt.do(c)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := n.Load(); got != tt.wantReqs {
				t.Errorf("%d requests, want %d", got, tt.wantReqs)
			}
		})
	}
}

// A refused connection proves the request was not sent: even a create is
// sent again. In virtual time (synctest): the two back-offs of about a
// second are what shows the retries.
func TestConnectionRefusedIsRetriedEvenForCreate(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	synctest.Test(t, func(t *testing.T) {
		c, _ := remote.New(url, &remote.Options{Policy: &remote.Policy{MaxRetries: 2, MinBackoff: time.Second, MaxBackoff: time.Second}})
		start := time.Now()
		_, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: graph()})
		if err == nil || remote.OutcomeUnknown(err) {
			t.Errorf("err = %v; a refused connection is a known outcome: nothing was created", err)
		}
		// 1s each, 25% jitter.
		if d := time.Since(start); d < 1500*time.Millisecond || d > 2500*time.Millisecond {
			t.Errorf("gave up after %v, want two back-offs of about 1s: the create was not sent again", d)
		}
	})
}

func TestBreakerOpensAndPauses(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c, _ := remote.New(srv.URL, &remote.Options{Policy: &remote.Policy{
		MaxRetries: -1, BreakerThreshold: 3, BreakerDelay: time.Hour, MinBackoff: time.Millisecond,
	}})
	for range 3 {
		c.GetJob(t.Context(), "j")
	}
	if c.Available() {
		t.Error("breaker closed after 3 failures in a row")
	}
	_, err := c.GetJob(t.Context(), "j")
	if !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if n.Load() != 3 {
		t.Errorf("%d requests reached the back-end, want 3 (none while open)", n.Load())
	}
}

// In virtual time (synctest), so the gaps are the limiter's alone. The
// server runs outside the bubble, and the client opens a connection per
// request: an idle keep-alive connection's reader would stop the bubble's
// clock.
func TestRateLimit(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	synctest.Test(t, func(t *testing.T) {
		opts := fast()
		opts.Policy.RequestsPerSecond = 50
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		c, _ := remote.New(srv.APIURL, opts)
		c.SetToken(srv.ValidToken())
		start := time.Now()
		for range 26 {
			if _, err := c.ListJobs(t.Context(), 0); err != nil {
				t.Fatal(err)
			}
		}
		// 26 requests at 50 per second: 25 gaps of 20ms.
		if d := time.Since(start); d != 500*time.Millisecond {
			t.Errorf("26 requests took %v, want 25 gaps of 20ms", d)
		}
	})
}

// An expired token is renewed (basic: log in again) and the request sent
// once more; the caller never sees the expiry.
func TestExpiredTokenRenewed(t *testing.T) {
	clock := remotetest.NewManualClock()
	srv := remotetest.NewServer(remotetest.Options{Clock: clock, Faults: remotetest.Faults{TokenTTL: time.Minute}})
	defer srv.Close()
	c := connect(t, srv)
	for range 5 {
		clock.Advance(2 * time.Minute)
		if _, err := c.ListJobs(t.Context(), 0); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
	if n := srv.Requests()["GET /credentials/basic"]; n != 6 {
		t.Errorf("%d logins, want 6 (one at start, one per expiry)", n)
	}
	// A given token cannot be renewed: the error comes through.
	c2, _ := remote.New(srv.APIURL, fast())
	c2.SetToken(srv.ValidToken())
	clock.Advance(2 * time.Minute)
	if _, err := c2.ListJobs(t.Context(), 0); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("expired static token: err = %v, want ErrAuth", err)
	}
}

func TestDownloadResumesAndVerifies(t *testing.T) {
	const size = 200_000
	srv := remotetest.NewServer(remotetest.Options{AssetSize: size, Faults: remotetest.Faults{DropRate: 0.5, Seed: 7}})
	defer srv.Close()
	c := connect(t, srv)
	ctx := t.Context()
	var ids []string
	for range 8 {
		id, _ := c.CreateJob(ctx, &remote.JobRequest{Process: graph()})
		c.StartJob(ctx, id)
		ids = append(ids, id)
	}
	dir := t.TempDir()
	for _, id := range ids {
		res, err := c.Results(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		a := res.Assets["result.tif"]
		want := remotetest.AssetBytes(id, "result.tif", size)
		sum := sha256.Sum256(want)
		a.FileChecksum = "1220" + hex.EncodeToString(sum[:])
		dst := filepath.Join(dir, id+".tif")
		if _, err := c.DownloadAsset(ctx, a, dst); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		got, _ := os.ReadFile(dst)
		if string(got) != string(want) {
			t.Errorf("%s: content differs", id)
		}
	}
	if srv.Injected()["drop"] == 0 {
		t.Error("no download was cut: the test tested nothing")
	}
	if srv.Requests()["GET /assets/{job_id}/{name}"] <= len(ids) {
		t.Error("no download was resumed")
	}

	// A wrong checksum or size fails and leaves no file.
	res, _ := c.Results(ctx, ids[0])
	a := res.Assets["result.tif"]
	a.FileChecksum = "1220" + hex.EncodeToString(make([]byte, 32))
	srv.SetFaults(remotetest.Faults{})
	dst := filepath.Join(dir, "bad.tif")
	if _, err := c.DownloadAsset(ctx, a, dst); !errors.Is(err, remote.ErrVerify) {
		t.Errorf("bad checksum: err = %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("%s left behind", dst)
	}
	if parts, _ := filepath.Glob(dst + ".*part*"); len(parts) > 0 {
		t.Errorf("%v left behind", parts)
	}
}
