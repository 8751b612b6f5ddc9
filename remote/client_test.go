package remote_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

func graph() remote.Process {
	return remote.Process{ProcessGraph: map[string]any{
		"add": map[string]any{"process_id": "add", "arguments": map[string]any{"x": 1, "y": 2}, "result": true},
	}}
}

// fast is a policy for tests: real retries, tiny waits.
func fast() *remote.Options {
	return &remote.Options{Policy: &remote.Policy{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxRetryAfter: 10 * time.Millisecond}}
}

func connect(t *testing.T, srv *remotetest.Server) *remote.Client {
	t.Helper()
	c, err := remote.Connect(t.Context(), srv.URL, fast())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AuthenticateBasic(t.Context(), "user", "password"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscoveryPicksProductionVersionAndKeepsPath(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c, err := remote.Connect(t.Context(), srv.URL, fast())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.URL(), srv.APIURL+"/"; got != want {
		t.Fatalf("API root = %q, want %q (1.2.0 is the highest production version)", got, want)
	}
	caps, err := c.Capabilities(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if caps.APIVersion != "1.2.0" || !caps.Supports("POST", "/jobs") {
		t.Errorf("capabilities = %+v", caps)
	}
	// Endpoint paths are joined below the API root's path, not at the host root.
	if n := srv.Requests()["GET /{$}"]; n != 1 {
		t.Errorf("GET / under %s reached %d times, want 1", remotetest.APIPath, n)
	}
}

func TestConnectWithoutDiscoveryUsesURL(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c, err := remote.Connect(t.Context(), srv.APIURL, fast())
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != srv.APIURL+"/" {
		t.Errorf("URL = %q", c.URL())
	}
}

func TestAuthErrors(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c, _ := remote.New(srv.APIURL, fast())
	err := c.AuthenticateBasic(t.Context(), "user", "wrong")
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "CredentialsInvalid" || !errors.Is(err, remote.ErrAuth) {
		t.Errorf("wrong password: err = %v", err)
	}
	_, err = c.ListJobs(t.Context(), 0)
	if !errors.Is(err, remote.ErrAuth) {
		t.Errorf("no token: err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "password") {
		t.Errorf("error leaks a secret: %v", err)
	}
	c.SetToken(srv.ValidToken())
	if _, err := c.ListJobs(t.Context(), 0); err != nil {
		t.Errorf("with a given token: %v", err)
	}
}

func TestJobLifecycle(t *testing.T) {
	clock := remotetest.NewManualClock()
	srv := remotetest.NewServer(remotetest.Options{Clock: clock, QueueTime: time.Minute, RunTime: time.Minute, AssetSize: 5000})
	defer srv.Close()
	c := connect(t, srv)
	ctx := t.Context()

	id, err := c.WithJobTag("row-7").CreateJob(ctx, &remote.JobRequest{Title: "t", Description: "mine", Process: graph()})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.GetJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "created" || j.Title != "t" || remote.JobTag(j.Description) != "row-7" || !strings.HasPrefix(j.Description, "mine") {
		t.Errorf("created job = %+v", j)
	}
	if _, err := c.Results(ctx, id); !errors.Is(err, remote.ErrJobNotFinished) {
		t.Errorf("results before finish: err = %v", err)
	}
	if err := c.StartJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"queued", "running", "finished"} {
		j, err = c.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != want {
			t.Fatalf("status = %q, want %q", j.Status, want)
		}
		clock.Advance(time.Minute)
	}
	if j.Usage["duration"].String() != "60 seconds" || j.Costs == nil {
		t.Errorf("usage = %v, costs = %v", j.Usage, j.Costs)
	}
	res, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := res.Assets["result.tif"]
	if !ok || !json.Valid(res.Raw) {
		t.Fatalf("results = %+v", res)
	}
	dst := filepath.Join(t.TempDir(), "result.tif")
	n, err := c.Download(ctx, a.Href, dst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if n != 5000 || !bytes.Equal(got, remotetest.AssetBytes(id, "result.tif", 5000)) {
		t.Errorf("downloaded %d bytes, content matches: %v", n, bytes.Equal(got, remotetest.AssetBytes(id, "result.tif", 5000)))
	}
	if parts, _ := filepath.Glob(dst + ".*.part"); len(parts) > 0 {
		t.Errorf(".part file left behind: %v", parts)
	}
	if err := c.DeleteJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetJob(ctx, id); !errors.Is(err, remote.ErrJobNotFound) {
		t.Errorf("deleted job: err = %v, want ErrJobNotFound", err)
	}
}

func TestFailedJobResultsAndLogs(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{Outcome: func(*remote.JobRequest) error { return errors.New("out of memory") }})
	defer srv.Close()
	c := connect(t, srv)
	ctx := t.Context()
	id, _ := c.CreateJob(ctx, &remote.JobRequest{Process: graph()})
	if err := c.StartJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, err := c.Results(ctx, id)
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 424 || apiErr.Message != "out of memory" {
		t.Errorf("results of failed job: err = %v", err)
	}
	logs, err := c.Logs(ctx, id, "error")
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || logs[0].Level != "error" || logs[0].Message != "out of memory" {
		t.Errorf("error logs = %+v", logs)
	}
	all, _ := c.Logs(ctx, id, "debug")
	if len(all) != 3 {
		t.Errorf("debug logs = %d entries, want 3", len(all))
	}
}

func TestListJobsFollowsPages(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c := connect(t, srv)
	for range 7 {
		if _, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: graph()}); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := c.ListJobs(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 7 {
		t.Errorf("listed %d jobs, want 7", len(jobs))
	}
	if n := srv.Requests()["GET /jobs"]; n != 3 {
		t.Errorf("%d listing requests, want 3 pages", n)
	}
}

func TestProcessGraph(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	srv.AddProcess("evi", json.RawMessage(`{"id":"evi","process_graph":{}}`))
	c := connect(t, srv)
	raw, err := c.ProcessGraph(t.Context(), "evi")
	if err != nil || !strings.Contains(string(raw), `"evi"`) {
		t.Errorf("ProcessGraph = %s, %v", raw, err)
	}
	_, err = c.ProcessGraph(t.Context(), "nope")
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "ProcessGraphNotFound" {
		t.Errorf("unknown process: err = %v", err)
	}
}

// The openEO token must never reach another host, such as an asset store.
func TestTokenNotSentToOtherHosts(t *testing.T) {
	var gotAuth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		w.Write([]byte("data"))
	}))
	defer other.Close()
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c := connect(t, srv)
	if _, err := c.Download(t.Context(), other.URL+"/x.tif", filepath.Join(t.TempDir(), "x.tif")); err != nil {
		t.Fatal(err)
	}
	if len(gotAuth) != 1 || gotAuth[0] != "" {
		t.Errorf("asset host got Authorization %q", gotAuth)
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	hits := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>502 Bad Gateway</html>"))
	}))
	defer proxy.Close()
	opts := fast()
	opts.Policy.MaxRetries = 2
	c, _ := remote.New(proxy.URL, opts)
	_, err := c.GetJob(t.Context(), "x")
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, remote.ErrTransient) || apiErr.RetryAfter != 7*time.Second ||
		!strings.Contains(apiErr.Message, "502 Bad Gateway") {
		t.Errorf("err = %#v", err)
	}
	if hits != 3 {
		t.Errorf("%d requests, want 1 + 2 retries", hits)
	}
}

func TestJobTag(t *testing.T) {
	tests := map[string]string{
		"":                                   "",
		"plain":                              "",
		remote.TagMarker("a"):                "a",
		"text\n\n" + remote.TagMarker("b-1"): "b-1",
		"[openeo-batch-worker:unclosed":      "",
	}
	for in, want := range tests {
		if got := remote.JobTag(in); got != want {
			t.Errorf("JobTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOutcomeUnknown(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	c := connect(t, srv)
	_, err4xx := c.CreateJob(t.Context(), &remote.JobRequest{}) // no process graph: 400
	srv.Close()
	// A fresh client: c's pooled connection would fail after sending (EOF),
	// which is rightly an unknown outcome.
	cr, _ := remote.New(srv.APIURL, fast())
	_, errRefused := cr.CreateJob(t.Context(), &remote.JobRequest{Process: graph()}) // nothing listens
	// A server that reads the request, then drops the connection unanswered.
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer hangup.Close()
	ch, _ := remote.New(hangup.URL, fast())
	_, errDropped := ch.CreateJob(t.Context(), &remote.JobRequest{Process: graph()})
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"400 answer", err4xx, false},
		{"connection refused: not sent", errRefused, false},
		{"connection dropped after sending", errDropped, true},
		{"502 answer", &remote.APIError{StatusCode: 502}, true},
		{"not a request", errors.New("row 3: required parameter"), false},
	}
	for _, tt := range tests {
		if got := remote.OutcomeUnknown(tt.err); got != tt.want {
			t.Errorf("%s: OutcomeUnknown(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestLogsAfterOffset(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{Outcome: func(*remote.JobRequest) error { return errors.New("boom") }})
	defer srv.Close()
	c := connect(t, srv)
	id, _ := c.CreateJob(t.Context(), &remote.JobRequest{Process: graph()})
	c.StartJob(t.Context(), id)
	logs, err := c.LogsAfter(t.Context(), id, "debug", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 || logs[0].ID != "2" || logs[1].ID != "3" {
		t.Errorf("logs after 1 = %+v, want entries 2 and 3", logs)
	}
}

// The start refusals a manager must treat as back-pressure, not failure,
// come through typed.
func TestStartRefusals(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{RunTime: time.Hour, Faults: remotetest.Faults{ConcurrentJobLimit: 1}})
	defer srv.Close()
	c := connect(t, srv)
	ctx := t.Context()
	a, _ := c.CreateJob(ctx, &remote.JobRequest{Process: graph()})
	b, _ := c.CreateJob(ctx, &remote.JobRequest{Process: graph()})
	if err := c.StartJob(ctx, a); err != nil {
		t.Fatal(err)
	}
	err := c.StartJob(ctx, b)
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "ConcurrentJobLimit" || apiErr.StatusCode != 400 {
		t.Errorf("second start: err = %v, want 400 ConcurrentJobLimit", err)
	}
	srv.SetFaults(remotetest.Faults{PaymentRequired: true})
	if err := c.StartJob(ctx, b); !errors.Is(err, remote.ErrPaymentRequired) {
		t.Errorf("start without credit: err = %v, want ErrPaymentRequired", err)
	}
	if n := srv.Requests()["POST /jobs/{job_id}/results"]; n != 3 {
		t.Errorf("%d start requests: a refusal was retried", n)
	}
}
