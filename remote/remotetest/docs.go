package remotetest

import (
	"net/http"
	"net/http/httptest"
	"sync"
)

// DocServer is a plain web host on 127.0.0.1 serving fixed JSON documents,
// such as a public catalogue of process definitions (the "namespace" of a
// remote process). It records every request, with its Authorization
// header, so tests can check that no credentials reach it.
type DocServer struct {
	// URL is the server's root, without a trailing slash.
	URL string

	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string][]byte
	reqs []DocRequest
	fail []int // statuses to answer the next requests with
}

// DocRequest is one request a DocServer received.
type DocRequest struct {
	Method, Path, Authorization string
}

// NewDocServer serves docs, keyed by path ("/processes/ndvi.json").
// Unknown paths get 404. Close it when done.
func NewDocServer(docs map[string][]byte) *DocServer {
	d := &DocServer{docs: docs}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	d.URL = d.srv.URL
	return d
}

// Close shuts the server down.
func (d *DocServer) Close() { d.srv.Close() }

// FailNext makes the next requests fail, one per status given (such as
// 503), before documents are served again.
func (d *DocServer) FailNext(statuses ...int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = append(d.fail, statuses...)
}

// Requests returns the requests received so far, in order.
func (d *DocServer) Requests() []DocRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DocRequest(nil), d.reqs...)
}

func (d *DocServer) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.reqs = append(d.reqs, DocRequest{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization")})
	var status int
	if len(d.fail) > 0 {
		status, d.fail = d.fail[0], d.fail[1:]
	}
	doc, ok := d.docs[r.URL.Path]
	d.mu.Unlock()
	switch {
	case status != 0:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "injected failure", status)
	case !ok || r.Method != http.MethodGet:
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}
}
