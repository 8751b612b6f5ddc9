package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzErrorBody: any error answer, JSON or not, becomes an *APIError that
// keeps the status, and whose message is bounded.
func FuzzErrorBody(f *testing.F) {
	f.Add(502, []byte("<html><body>502 Bad Gateway</body></html>"))
	f.Add(404, []byte(`{"id":"x","code":"JobNotFound","message":"no such job","links":[]}`))
	f.Add(424, []byte(`{"id":"1","level":"error","code":"JobFailed","message":"boom"}`))
	f.Add(400, []byte(`{"code":12,"message":null}`))
	f.Add(503, []byte(strings.Repeat("x", 5000)))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 400 || status > 599 {
			return
		}
		req, _ := http.NewRequest(http.MethodGet, "http://h/x?sig=secret", nil)
		e := newAPIError(&http.Response{StatusCode: status, Request: req, Header: http.Header{}}, body)
		if e.StatusCode != status {
			t.Fatalf("status %d became %d", status, e.StatusCode)
		}
		if len(e.Message) > 1000 && e.Code == "" {
			t.Fatalf("message of %d bytes from a non-JSON body", len(e.Message))
		}
		if strings.Contains(e.Error(), "secret") {
			t.Fatal("the query of the URL (a signature) leaked into the error")
		}
		_ = errors.Is(e, ErrTransient)
	})
}

// fuzzServer serves body as the answer to every request.
type fuzzServer struct {
	mu   sync.Mutex
	body []byte
	srv  *httptest.Server
	c    *Client
}

func newFuzzServer(f *testing.F) *fuzzServer {
	fs := &fuzzServer{}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		b := fs.body
		fs.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	f.Cleanup(fs.srv.Close)
	fs.c, _ = New(fs.srv.URL, &Options{Policy: &Policy{MaxRetries: -1, Timeout: 5 * time.Second, BreakerThreshold: -1}})
	fs.c.SetToken("basic//t")
	return fs
}

func (fs *fuzzServer) serve(b []byte) {
	fs.mu.Lock()
	fs.body = b
	fs.mu.Unlock()
}

// FuzzDocuments: job documents, listings, result documents (Item or
// Collection) and logs from a back-end never crash the client; results
// keep only absolute links, and a listing with a next link to itself ends.
func FuzzDocuments(f *testing.F) {
	f.Add([]byte(`{"id":"j","status":"finished","created":"2024-01-01T00:00:00Z","usage":{"cpu":{"value":1,"unit":"cpu-seconds"}},"costs":1.5}`))
	f.Add([]byte(`{"type":"Feature","stac_version":"1.0.0","id":"j","assets":{"a.tif":{"href":"a.tif","file:size":3}},"links":[]}`))
	f.Add([]byte(`{"type":"Collection","assets":{"x":{"href":"https://other/x","file:checksum":"1220ab"}},"links":[{"rel":"next","href":"?p=2"}]}`))
	f.Add([]byte(`{"jobs":[{"id":"a","status":"queued"}],"links":[{"rel":"next","href":"/jobs?limit=1"}]}`))
	f.Add([]byte(`{"logs":[{"id":"1","level":"error","message":"m","data":{"x":[1,2]}}],"links":[]}`))
	f.Add([]byte(`{"jobs":null,"logs":7}`))
	f.Add([]byte(`{"costs":2.5,"duration":"PT1H","size":100,"downloads_included":null,"expires":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"costs":"cheap","size":-1}`))
	f.Add([]byte(`[]`))
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fs.serve(body)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fs.c.GetJob(ctx, "j")
		if r, err := fs.c.Results(ctx, "j"); err == nil {
			for _, a := range r.Assets {
				if u, err := url.Parse(a.Href); err == nil && a.Href != "" && !u.IsAbs() {
					t.Fatalf("asset href %q not made absolute", a.Href)
				}
			}
		}
		// The server answers every page with the same document: a next link
		// leads back to a page already read, and the listing must stop.
		if _, err := fs.c.ListJobs(ctx, 0); ctx.Err() != nil {
			t.Fatalf("listing did not end: %v", err)
		}
		if e, err := fs.c.EstimateJob(ctx, "j"); err == nil && e.Costs != nil && !(*e.Costs >= 0) {
			t.Fatalf("estimate costs %v accepted", *e.Costs)
		}
		if _, err := fs.c.Logs(ctx, "j", "error"); ctx.Err() != nil {
			t.Fatalf("logs did not end: %v", err)
		}
	})
}
