// Package remotetest is a fake openEO back-end: a real HTTP server on
// 127.0.0.1, in the manner of net/http/httptest, for tests, benchmarks and
// the demo.
//
// Jobs move created → queued → running → finished (or error) on a schedule
// measured by the server's Clock: a job stays QueueTime in queued and RunTime
// in running. Transitions happen when the server is asked about its jobs, so
// a ManualClock gives tests full control without sleeping. The server
// follows the openEO API 1.2: version discovery at /.well-known/openeo, the
// API under /openeo/1.2, basic and bearer authentication, paginated
// listings, results with downloadable assets (described as a STAC Item
// with the job's extent as geometry, a datetime and media types), logs,
// user-defined processes.
package remotetest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openeo-batch/worker/remote"
)

// APIPath is where the fake serves the openEO API.
const APIPath = "/openeo/1.2"

// Clock tells the server the time.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that moves only when told to. Safe for concurrent use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock stopped at a fixed instant.
func NewManualClock() *ManualClock {
	return &ManualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Options configures a Server. The zero value gives jobs that finish at once
// and accept any bearer token issued by /credentials/basic for user "user"
// with password "password".
type Options struct {
	Clock     Clock
	QueueTime time.Duration // time in queued
	RunTime   time.Duration // time in running
	// MaxRunning caps the jobs running at once; others wait in queued. 0 = no cap.
	MaxRunning int
	// Outcome decides how a job ends: nil error for finished, otherwise error
	// with the error's text as the job's error log. Nil means always finished.
	Outcome func(job *remote.JobRequest) error
	// Username and Password for /credentials/basic.
	Username, Password string
	// AssetSize is the size in bytes of each result asset (default 1024).
	AssetSize int
	// Assets is the number of result assets per job (default 1).
	Assets int
	// Faults are the failures the server injects (see SetFaults).
	Faults Faults
	// OIDC, when set, is listed at /credentials/oidc and its access tokens
	// are accepted as "oidc/<id>/<token>".
	OIDC *OIDCProvider
	// AssetNames, when set, names the result assets (and overrides Assets),
	// for instance to test names with folders such as "data/b03.tif" (served
	// at .../assets/<job>/data/b03.tif) or hostile ones such as "../x".
	AssetNames []string
	// AssetHost serves the result assets from a second server, on another
	// port of 127.0.0.1 (another origin), as back-ends that keep results in
	// an object store do. The result documents link there.
	AssetHost bool
	// RedirectAssets links the assets on the API's origin, which answers
	// 302 Found to the asset host (implies AssetHost).
	RedirectAssets bool
	// IgnoreRange serves every asset whole, ignoring Range requests, as
	// some servers do.
	IgnoreRange bool
	// AssetTypes gives the media type ("type") of result assets by name in
	// result documents; one it lacks has the type of its extension
	// (GeoTIFF for .tif, netCDF for .nc, ...; application/octet-stream for
	// others).
	AssetTypes map[string]string
	// AssetHref, when set and returning a non-empty string, replaces the
	// link of asset name of job id in result documents (for links such as
	// file:///etc/passwd).
	AssetHref func(jobID, name string) string
	// Costs, when set, gives the costs (in credits) a job reports once it
	// stopped; nil means 1.5 credits a job.
	Costs func(job *remote.JobRequest) float64
	// Estimate, when set, serves GET /jobs/{job_id}/estimate (and lists it
	// in the capabilities) with the costs it returns; an error answers 500
	// EstimateComplexity with its text. Nil means no estimate endpoint.
	Estimate func(job *remote.JobRequest) (float64, error)
}

// AssetRequest is a request for an asset, as the fake saw it.
type AssetRequest struct {
	// Host is "api" for the API's origin, "assets" for the asset host.
	Host string
	Path string
	// Authorization, Range and IfRange are the request's headers.
	Authorization, Range, IfRange string
}

// jobSeq numbers jobs across all servers of a process, so that two fake
// back-ends never hand out the same job id (their job folders would clash).
var jobSeq atomic.Int64

type job struct {
	id        string
	req       remote.JobRequest
	body      json.RawMessage // the POST /jobs body as received
	status    string
	created   time.Time
	updated   time.Time
	queuedAt  time.Time
	runningAt time.Time
	failure   string
	seq       int // start order
	// extent is the bounding box (west, south, east, north) of the places
	// the job names, the results' geometry; hasExtent is false for none.
	extent    [4]float64
	hasExtent bool
}

// Server is a running fake back-end.
type Server struct {
	// URL is what a user would type: discovery at URL/.well-known/openeo.
	URL string
	// APIURL is the API root, URL + APIPath.
	APIURL string

	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	jobs      map[string]*job
	order     []*job // creation order
	startSeq  int
	requests  map[string]int
	arrivals  map[string][]time.Time
	peak      int                  // most jobs active (created, queued, running) at once
	tokens    map[string]time.Time // access token -> when issued
	tokenUser map[string]string    // access token -> user it was issued to
	// perClient holds each client's request arrivals of the last second
	// (Faults.MaxRatePerClient), by clientOf.
	perClient map[string][]time.Time
	logins    int
	rng       *rand.Rand
	recent    []time.Time // arrival of the requests of the last second
	peakRate  int
	conns     int // connections opened by clients
	injected  map[string]int
	processes map[string]json.RawMessage
	// acceptToken, when set, accepts bearer tokens the server did not issue
	// (OIDC tokens of a test provider).
	acceptToken func(bearer string) bool
	// assetSrv is the asset host (Options.AssetHost), nil without one.
	assetSrv     *httptest.Server
	assetLog     []AssetRequest
	assetVersion int // bumped by ChangeAssets
}

// NewServer starts a fake back-end on 127.0.0.1. Close it when done.
func NewServer(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Username == "" && opts.Password == "" {
		opts.Username, opts.Password = "user", "password"
	}
	if opts.AssetSize <= 0 {
		opts.AssetSize = 1024
	}
	if opts.Assets <= 0 {
		opts.Assets = 1
	}
	s := &Server{
		opts:      opts,
		jobs:      map[string]*job{},
		requests:  map[string]int{},
		arrivals:  map[string][]time.Time{},
		tokens:    map[string]time.Time{},
		tokenUser: map[string]string{},
		perClient: map[string][]time.Time{},
		processes: map[string]json.RawMessage{},
		injected:  map[string]int{},
	}
	s.SetFaults(opts.Faults)
	if opts.OIDC != nil {
		s.acceptToken = opts.OIDC.valid
	}
	mux := http.NewServeMux()
	s.routes(mux)
	// The URLs are set before serving starts: handlers read them.
	s.srv = httptest.NewUnstartedServer(cors(mux))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.URL = "http://" + s.srv.Listener.Addr().String()
	s.APIURL = s.URL + APIPath
	if opts.AssetHost || opts.RedirectAssets {
		amux := http.NewServeMux()
		amux.HandleFunc("GET /assets/{job_id}/{name...}", func(w http.ResponseWriter, r *http.Request) {
			s.asset("assets", w, r)
		})
		s.assetSrv = httptest.NewServer(amux)
	}
	s.srv.Start()
	return s
}

// Close shuts the server down.
func (s *Server) Close() {
	s.srv.Close()
	if s.assetSrv != nil {
		s.assetSrv.Close()
	}
}

// AssetRequests returns the asset requests received so far, on the API's
// origin and on the asset host, in order.
func (s *Server) AssetRequests() []AssetRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.assetLog)
}

// ChangeAssets gives every asset new content and a new validator (ETag),
// as when a back-end recomputes a result: a download resumed across the
// change must start over.
func (s *Server) ChangeAssets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assetVersion++
}

// AssetContent returns what the fake serves now for asset name of job id.
func (s *Server) AssetContent(id, name string) []byte {
	s.mu.Lock()
	v := s.assetVersion
	s.mu.Unlock()
	return assetContent(id, name, s.opts.AssetSize, v)
}

func assetContent(id, name string, size, version int) []byte {
	if version == 0 {
		return AssetBytes(id, name, size)
	}
	return AssetBytes(id, fmt.Sprintf("%s#%d", name, version), size)
}

// Requests returns how many requests each route received, keyed like
// "GET /jobs/{job_id}" (paths relative to the API root).
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.requests)
}

// TotalRequests returns the number of requests received on all routes.
func (s *Server) TotalRequests() int {
	n := 0
	for _, v := range s.Requests() {
		n += v
	}
	return n
}

// Connections returns how many connections clients opened.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// PeakActive returns the largest number of jobs that were active
// (created, queued or running) at the same time.
func (s *Server) PeakActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// notePeakLocked records the number of active jobs now.
func (s *Server) notePeakLocked() {
	n := 0
	for _, j := range s.order {
		if j.status == "created" || j.status == "queued" || j.status == "running" {
			n++
		}
	}
	s.peak = max(s.peak, n)
}

// JobInfo is a snapshot of a job on the fake back-end, for assertions.
type JobInfo struct {
	ID, Title, Description, Status string
	// Started says the job was ever started (POST /jobs/{id}/results
	// accepted), whatever its status now.
	Started bool
	// Body is the POST /jobs body as the client sent it, byte for byte,
	// for comparing number literals (1.0 against 1) and absent keys.
	Body json.RawMessage
}

// Jobs returns a snapshot of every job, in creation order.
func (s *Server) Jobs() []JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	out := make([]JobInfo, 0, len(s.order))
	for _, j := range s.order {
		out = append(out, JobInfo{ID: j.id, Title: j.req.Title, Description: j.req.Description, Status: j.status, Body: j.body,
			Started: j.seq > 0})
	}
	return out
}

// ForgetJob deletes a job behind the client's back, as a back-end that
// loses jobs does: later requests for it get 404 JobNotFound.
func (s *Server) ForgetJob(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, id)
	s.order = slices.DeleteFunc(s.order, func(j *job) bool { return j.id == id })
}

// AddProcess stores a user-defined process, served at
// GET /process_graphs/{id}. def is the full process document.
func (s *Server) AddProcess(id string, def json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processes[id] = def
}

func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Link, Location, OpenEO-Costs, OpenEO-Identifier")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PATCH, PUT, DELETE, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request)

func (s *Server) routes(mux *http.ServeMux) {
	handle := func(method, path string, auth bool, h handlerFunc) {
		// {name...} wildcards are counted as {name}: a route's key does not
		// depend on whether its last segment may hold slashes.
		key := method + " " + strings.ReplaceAll(path, "...}", "}")
		mux.HandleFunc(method+" "+APIPath+path, func(w http.ResponseWriter, r *http.Request) {
			arrived := s.opts.Clock.Now() // before any lock: see admitLocked
			s.serveWithFaults(key, arrived, w, r, func(w http.ResponseWriter, r *http.Request) {
				if auth && !s.authorized(w, r) {
					return
				}
				h(w, r)
			})
		})
	}
	mux.HandleFunc("GET /.well-known/openeo", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests["GET /.well-known/openeo"]++
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"versions": []map[string]any{
			{"url": s.URL + "/openeo/0.4", "api_version": "0.4.2", "production": true},
			{"url": s.APIURL, "api_version": "1.2.0", "production": true},
			{"url": s.URL + "/openeo/1.3-dev", "api_version": "1.3.0", "production": false},
		}})
	})
	handle("GET", "/{$}", false, s.capabilities)
	handle("GET", "/credentials/basic", false, s.basicAuth)
	handle("GET", "/credentials/oidc", false, s.oidcProviders)
	handle("POST", "/jobs", true, s.createJob)
	handle("GET", "/jobs", true, s.listJobs)
	handle("GET", "/jobs/{job_id}", true, s.withJob(s.getJob))
	handle("DELETE", "/jobs/{job_id}", true, s.withJob(s.deleteJob))
	handle("POST", "/jobs/{job_id}/results", true, s.withJob(s.startJob))
	handle("DELETE", "/jobs/{job_id}/results", true, s.withJob(s.cancelJob))
	handle("GET", "/jobs/{job_id}/results", true, s.withJob(s.results))
	handle("GET", "/jobs/{job_id}/logs", true, s.withJob(s.logs))
	handle("GET", "/jobs/{job_id}/estimate", true, s.withJob(s.estimate))
	handle("GET", "/me", true, s.me)
	handle("POST", "/validation", true, s.validate)
	handle("GET", "/process_graphs", true, s.listProcessGraphs)
	handle("GET", "/process_graphs/{process_graph_id}", true, s.processGraph)
	handle("PUT", "/process_graphs/{process_graph_id}", true, s.storeProcessGraph)
	handle("DELETE", "/process_graphs/{process_graph_id}", true, s.deleteProcessGraph)
	// Assets are pre-signed links: no openEO token needed, as on real back-ends.
	// Asset names may hold folders ("data/b03.tif"), as STAC keys do.
	handle("GET", "/assets/{job_id}/{name...}", false, func(w http.ResponseWriter, r *http.Request) {
		if s.opts.RedirectAssets {
			s.mu.Lock()
			s.assetLog = append(s.assetLog, assetRequest("api", r))
			s.mu.Unlock()
			http.Redirect(w, r, s.assetSrv.URL+"/assets/"+url.PathEscape(r.PathValue("job_id"))+"/"+
				assetURLPath(r.PathValue("name"))+queryOf(r), http.StatusFound)
			return
		}
		s.asset("api", w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"id": strconv.FormatInt(time.Now().UnixNano(), 36), "code": code, "message": msg, "links": []any{}})
}

// issueTokenLocked makes a fresh access token for user. The caller holds s.mu.
func (s *Server) issueTokenLocked(user string) string {
	s.logins++
	sum := sha256.Sum256(fmt.Appendf(nil, "fake-openeo:%s:%d:%p", user, s.logins, s))
	tok := base64.RawURLEncoding.EncodeToString(sum[:12])
	s.tokens["basic//"+tok] = s.opts.Clock.Now()
	s.tokenUser["basic//"+tok] = user
	return tok
}

func (s *Server) basicAuth(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, "AuthenticationRequired", "basic credentials required")
		return
	}
	if user != s.opts.Username || pass != s.opts.Password {
		writeError(w, http.StatusForbidden, "CredentialsInvalid", "wrong user name or password")
		return
	}
	s.mu.Lock()
	tok := s.issueTokenLocked(user)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok})
}

// ValidToken returns a bearer token ("basic//...") the server accepts, for
// clients that skip basic authentication.
func (s *Server) ValidToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "basic//" + s.issueTokenLocked(s.opts.Username)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == "" {
		writeError(w, http.StatusUnauthorized, "AuthenticationRequired", "authentication required")
		return false
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	s.mu.Lock()
	issued, known := s.tokens[tok]
	ttl := s.opts.Faults.TokenTTL
	valid := ok && known && (ttl <= 0 || s.opts.Clock.Now().Sub(issued) < ttl)
	if !valid && s.acceptToken != nil && ok {
		valid = s.acceptToken(tok)
	}
	s.mu.Unlock()
	if !valid {
		writeError(w, http.StatusForbidden, "TokenInvalid", "invalid or expired token")
		return false
	}
	return true
}

func (s *Server) oidcProviders(w http.ResponseWriter, r *http.Request) {
	if s.opts.OIDC == nil {
		writeError(w, http.StatusNotFound, "NotFound", "this back-end has no OpenID Connect provider")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"providers": []any{s.opts.OIDC.providerDoc()}})
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) {
	ep := func(path string, methods ...string) map[string]any {
		return map[string]any{"path": path, "methods": methods}
	}
	endpoints := []any{
		ep("/credentials/basic", "GET"),
		ep("/jobs", "GET", "POST"),
		ep("/jobs/{job_id}", "GET", "DELETE"),
		ep("/jobs/{job_id}/results", "GET", "POST", "DELETE"),
		ep("/jobs/{job_id}/logs", "GET"),
		ep("/me", "GET"),
		ep("/process_graphs", "GET"),
		ep("/validation", "POST"),
		ep("/process_graphs/{process_graph_id}", "GET", "PUT", "DELETE"),
	}
	if s.opts.Estimate != nil {
		endpoints = append(endpoints, ep(remote.EstimatePath, "GET"))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"api_version": "1.2.0", "backend_version": "remotetest", "stac_version": "1.0.0",
		"type": "Catalog", "id": "remotetest", "title": "Fake openEO back-end",
		"description": "In-process fake back-end for tests and demos.", "production": false,
		"endpoints": endpoints,
		"links":     []any{},
		"billing":   map[string]any{"currency": "credits", "default_plan": "free"},
	})
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	var req remote.JobRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "ProcessInvalid", "invalid JSON body: "+err.Error())
		return
	}
	if len(req.Process.ProcessGraph) == 0 {
		writeError(w, http.StatusBadRequest, "ProcessGraphMissing", "process.process_graph is required")
		return
	}
	now := s.opts.Clock.Now()
	s.mu.Lock()
	j := &job{id: fmt.Sprintf("j-%06d", jobSeq.Add(1)), req: req, body: body, status: "created", created: now, updated: now}
	j.extent, j.hasExtent = resultExtent(body)
	s.jobs[j.id] = j
	s.order = append(s.order, j)
	s.advanceLocked()
	s.notePeakLocked()
	s.mu.Unlock()
	w.Header().Set("Location", s.APIURL+"/jobs/"+j.id)
	w.Header().Set("OpenEO-Identifier", j.id)
	w.WriteHeader(http.StatusCreated)
}

// withJob wraps a handler of /jobs/{job_id}...: it holds the lock, moves
// time on, and answers 404 JobNotFound for an unknown job.
func (s *Server) withJob(h func(w http.ResponseWriter, r *http.Request, j *job)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if j := s.lookupLocked(w, r); j != nil {
			h(w, r, j)
		}
	}
}

// lookupLocked returns the job of the request, advancing time first. The
// caller holds s.mu.
func (s *Server) lookupLocked(w http.ResponseWriter, r *http.Request) *job {
	s.advanceLocked()
	j := s.jobs[r.PathValue("job_id")]
	if j == nil {
		writeError(w, http.StatusNotFound, "JobNotFound", "job "+r.PathValue("job_id")+" does not exist")
	}
	return j
}

// advanceLocked moves jobs along their schedule up to the clock's now.
func (s *Server) advanceLocked() {
	now := s.opts.Clock.Now()
	var started []*job
	running := 0
	for _, j := range s.order {
		switch j.status {
		case "queued":
			started = append(started, j)
		case "running":
			running++
			started = append(started, j)
		}
	}
	slices.SortFunc(started, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	for _, j := range started {
		if j.status == "queued" && !now.Before(j.queuedAt.Add(s.opts.QueueTime)) &&
			(s.opts.MaxRunning == 0 || running < s.opts.MaxRunning) {
			j.status, j.runningAt, j.updated = "running", now, now
			running++
		}
		if j.status == "running" && !now.Before(j.runningAt.Add(s.opts.RunTime)) {
			j.status, j.updated = "finished", now
			if s.opts.Outcome != nil {
				if err := s.opts.Outcome(&j.req); err != nil {
					j.status, j.failure = "error", err.Error()
				}
			}
			running--
		}
	}
}

func (s *Server) startJob(w http.ResponseWriter, r *http.Request, j *job) {
	if s.opts.Faults.PaymentRequired {
		writeError(w, http.StatusPaymentRequired, "PaymentRequired", "no credits left to start job "+j.id)
		return
	}
	if limit := s.opts.Faults.ConcurrentJobLimit; limit > 0 && j.status != "queued" && j.status != "running" {
		n := 0
		for _, o := range s.order {
			if o.status == "queued" || o.status == "running" {
				n++
			}
		}
		if n >= limit {
			writeError(w, http.StatusBadRequest, "ConcurrentJobLimit",
				fmt.Sprintf("you may run %d jobs at once; %d are queued or running", limit, n))
			return
		}
	}
	if s.opts.Faults.IgnoreStart {
		w.WriteHeader(http.StatusAccepted) // and nothing happens
		return
	}
	if j.status != "queued" && j.status != "running" {
		now := s.opts.Clock.Now()
		s.startSeq++
		j.status, j.queuedAt, j.updated, j.seq, j.failure = "queued", now, now, s.startSeq, ""
		s.advanceLocked()
	}
	if s.opts.Faults.LostStarts > 0 {
		s.opts.Faults.LostStarts--
		s.injected["lost-start"]++
		writeError(w, http.StatusInternalServerError, "Internal", "injected: the job started but this answer was lost")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, j *job) {
	if s.opts.Faults.IgnoreCancel {
		w.WriteHeader(http.StatusNoContent) // and nothing happens
		return
	}
	switch j.status {
	case "queued":
		j.status, j.updated = "created", s.opts.Clock.Now()
	case "running":
		j.status, j.updated = "canceled", s.opts.Clock.Now()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, j *job) {
	delete(s.jobs, j.id)
	s.order = slices.DeleteFunc(s.order, func(x *job) bool { return x == j })
	w.WriteHeader(http.StatusNoContent)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) jobDoc(j *job, full bool) map[string]any {
	d := map[string]any{
		"id": j.id, "status": j.status, "created": rfc3339(j.created), "updated": rfc3339(j.updated),
	}
	if j.req.Title != "" {
		d["title"] = j.req.Title
	}
	if j.req.Description != "" {
		d["description"] = j.req.Description
	}
	switch j.status {
	case "created", "queued":
		d["progress"] = 0
	case "finished":
		d["progress"] = 100
	}
	if full {
		// The process as sent, number literals and all.
		var sent struct {
			Process json.RawMessage `json:"process"`
		}
		if json.Unmarshal(j.body, &sent) == nil && sent.Process != nil {
			d["process"] = sent.Process
		} else {
			d["process"] = j.req.Process
		}
		if j.status == "finished" || j.status == "error" {
			secs := j.updated.Sub(j.runningAt).Seconds()
			d["usage"] = map[string]any{
				"cpu":      map[string]any{"value": secs * 4, "unit": "cpu-seconds"},
				"memory":   map[string]any{"value": secs * 2048, "unit": "mb-seconds"},
				"duration": map[string]any{"value": secs, "unit": "seconds"},
			}
			d["costs"] = 1.5
			if s.opts.Costs != nil {
				d["costs"] = s.opts.Costs(&j.req)
			}
		}
	}
	return d
}

// estimate answers GET /jobs/{job_id}/estimate with Options.Estimate.
func (s *Server) estimate(w http.ResponseWriter, r *http.Request, j *job) {
	if s.opts.Estimate == nil {
		writeError(w, http.StatusNotFound, "NotFound", "this back-end does not estimate jobs")
		return
	}
	costs, err := s.opts.Estimate(&j.req)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "EstimateComplexity", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"costs": costs, "duration": "PT1M", "downloads_included": nil})
}

// me answers GET /me for an accepted token.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"user_id": s.opts.Username, "name": s.opts.Username})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, j *job) {
	writeJSON(w, http.StatusOK, s.jobDoc(j, true))
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	limit, start := 0, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "ParameterInvalid", "limit must be a positive integer")
			return
		}
		limit = n
	}
	if v := r.URL.Query().Get("start"); v != "" {
		start, _ = strconv.Atoi(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	end := len(s.order)
	if limit > 0 && start+limit < end {
		end = start + limit
	}
	docs := []any{}
	links := []any{}
	if start < len(s.order) {
		for _, j := range s.order[start:end] {
			docs = append(docs, s.jobDoc(j, false))
		}
	}
	if end < len(s.order) {
		links = append(links, map[string]any{"rel": "next",
			"href": fmt.Sprintf("%s/jobs?limit=%d&start=%d", s.APIURL, limit, end)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": docs, "links": links})
}

func (s *Server) results(w http.ResponseWriter, r *http.Request, j *job) {
	switch j.status {
	case "finished":
	case "error":
		writeJSON(w, http.StatusFailedDependency, map[string]any{"id": "1", "level": "error", "code": "JobFailed", "message": j.failure})
		return
	default:
		writeError(w, http.StatusBadRequest, "JobNotFinished", "job "+j.id+" is "+j.status)
		return
	}
	assets := map[string]any{}
	names := s.opts.AssetNames
	for i := range s.opts.Assets {
		if len(s.opts.AssetNames) > 0 {
			break
		}
		name := fmt.Sprintf("result-%d.tif", i)
		if s.opts.Assets == 1 {
			name = "result.tif"
		}
		names = append(names, name)
	}
	expiry := ""
	if ttl := s.opts.Faults.LinkTTL; ttl > 0 {
		expiry = fmt.Sprintf("?expires=%d", s.opts.Clock.Now().Add(ttl).Unix())
	}
	if s.opts.Faults.ExpiredLinks > 0 {
		s.opts.Faults.ExpiredLinks--
		s.injected["expired-links"]++
		expiry = fmt.Sprintf("?expires=%d", s.opts.Clock.Now().Add(-time.Hour).Unix())
	}
	base := s.APIURL
	if s.assetSrv != nil && !s.opts.RedirectAssets {
		base = s.assetSrv.URL
	}
	for _, name := range names {
		href := fmt.Sprintf("%s/assets/%s/%s%s", base, j.id, assetURLPath(name), expiry)
		if s.opts.AssetHref != nil {
			href = cmp.Or(s.opts.AssetHref(j.id, name), href)
		}
		assets[name] = map[string]any{
			"href": href, "type": s.opts.assetMediaType(name),
			"roles": []string{"data"}, "title": name, "file:size": s.opts.AssetSize,
		}
	}
	// A STAC Item, as back-ends describe results: the extent of the places
	// the job names as its geometry (null when it names none), the time it
	// finished as its datetime, each asset's media type.
	doc := map[string]any{
		"stac_version": "1.0.0", "type": "Feature", "id": j.id,
		"geometry": nil, "properties": map[string]any{"datetime": rfc3339(j.updated), "openeo:status": "finished"},
		"assets": assets, "links": []any{},
	}
	if j.hasExtent {
		doc["geometry"], doc["bbox"] = resultGeometry(j.extent)
	}
	writeJSON(w, http.StatusOK, doc)
}

// assetURLPath is an asset name as a URL path: each folder of it escaped.
func assetURLPath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// AssetBytes returns the content the fake serves for asset name of job id.
func AssetBytes(id, name string, size int) []byte {
	b := make([]byte, size)
	seed := sha256.Sum256([]byte(id + "/" + name))
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i)
	}
	return b
}

func assetRequest(host string, r *http.Request) AssetRequest {
	return AssetRequest{Host: host, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"),
		Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range")}
}

func queryOf(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}

// asset serves an asset on host ("api" or "assets"). Each version of an
// asset's content has its own strong ETag, so that If-Range works.
func (s *Server) asset(host string, w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.assetLog = append(s.assetLog, assetRequest(host, r))
	j := s.jobs[r.PathValue("job_id")]
	ok := j != nil && j.status == "finished"
	now := s.opts.Clock.Now()
	drop := s.opts.Faults.DropRate > 0 && s.rng.Float64() < s.opts.Faults.DropRate
	if drop {
		s.injected["drop"]++
	}
	version := s.assetVersion
	failing, failStatus := s.opts.Faults.FailingAssets, s.opts.Faults.FailingAssetStatus
	if slices.Contains(failing, r.PathValue("name")) {
		s.injected["failing-asset"]++
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "no such asset")
		return
	}
	if slices.Contains(failing, r.PathValue("name")) {
		writeError(w, cmp.Or(failStatus, http.StatusInternalServerError), "AssetUnavailable",
			"injected: asset "+r.PathValue("name")+" cannot be read")
		return
	}
	if exp, ok := unixParam(r, "expires"); ok && now.After(exp) {
		writeError(w, http.StatusGone, "ResultLinkExpired", "the link expired: request the results again")
		return
	}
	w.Header().Set("Content-Type", "image/tiff")
	var out http.ResponseWriter = w
	if drop {
		out = &dropWriter{ResponseWriter: w, limit: s.opts.AssetSize / 2}
	}
	content := assetContent(j.id, r.PathValue("name"), s.opts.AssetSize, version)
	if s.opts.IgnoreRange {
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	} else {
		sum := sha256.Sum256(content)
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sum[:8]))
	}
	// ServeContent answers Range and If-Range requests, so an interrupted
	// download can resume.
	http.ServeContent(out, r, "", time.Time{}, bytes.NewReader(content))
}

var levels = map[string]int{"debug": 0, "info": 1, "warning": 2, "error": 3}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, j *job) {
	type entry = map[string]any
	all := []entry{
		{"id": "1", "level": "info", "message": "job created", "time": rfc3339(j.created)},
		{"id": "2", "level": "debug", "message": "process graph validated"},
	}
	if j.status == "error" {
		all = append(all, entry{"id": "3", "level": "error", "code": "JobFailed", "message": j.failure, "time": rfc3339(j.updated)})
	}
	minLevel := levels[cmp.Or(r.URL.Query().Get("level"), "debug")]
	offset := r.URL.Query().Get("offset")
	out := []entry{}
	for _, e := range all {
		if levels[e["level"].(string)] < minLevel {
			continue
		}
		if offset != "" {
			a, _ := strconv.Atoi(e["id"].(string))
			b, _ := strconv.Atoi(offset)
			if a <= b {
				continue
			}
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"logs": out, "links": []any{}})
}

func (s *Server) processGraph(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	def, ok := s.processes[r.PathValue("process_graph_id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ProcessGraphNotFound", "no process graph "+r.PathValue("process_graph_id"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(def)
}

// storeProcessGraph stores a user-defined process (PUT
// /process_graphs/{id}): the body is the process, its process_graph
// required; the id is the path's.
func (s *Server) storeProcessGraph(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("process_graph_id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	var doc map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(body, &doc)
	}
	if err != nil || len(doc["process_graph"]) == 0 {
		writeError(w, http.StatusBadRequest, "ProcessGraphMissing", "want a JSON process with a process_graph")
		return
	}
	doc["id"], _ = json.Marshal(id)
	stored, _ := json.Marshal(doc)
	s.AddProcess(id, stored)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) deleteProcessGraph(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, ok := s.processes[r.PathValue("process_graph_id")]
	delete(s.processes, r.PathValue("process_graph_id"))
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ProcessGraphNotFound", "no process graph "+r.PathValue("process_graph_id"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listProcessGraphs lists the stored processes (GET /process_graphs),
// without their graphs, as the API allows.
func (s *Server) listProcessGraphs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var list []any
	for _, id := range slices.Sorted(maps.Keys(s.processes)) {
		var doc map[string]any
		json.Unmarshal(s.processes[id], &doc)
		delete(doc, "process_graph")
		if doc == nil {
			doc = map[string]any{}
		}
		doc["id"] = id
		list = append(list, doc)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"processes": append([]any{}, list...), "links": []any{}})
}

// validate answers POST /validation: it reports a missing or empty
// process_graph, nodes without a process_id, and nodes that reference a
// user-defined process (no namespace, an id with an underscore or stored
// here) that is not stored here. It always answers 200, as the API says.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	var p struct {
		ProcessGraph map[string]struct {
			ProcessID string  `json:"process_id"`
			Namespace *string `json:"namespace"`
		} `json:"process_graph"`
	}
	errs := []map[string]string{}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&p); err != nil || len(p.ProcessGraph) == 0 {
		errs = append(errs, map[string]string{"code": "ProcessGraphMissing", "message": "process_graph is missing or empty"})
	}
	s.mu.Lock()
	for _, id := range slices.Sorted(maps.Keys(p.ProcessGraph)) {
		n := p.ProcessGraph[id]
		_, stored := s.processes[n.ProcessID]
		switch {
		case n.ProcessID == "":
			errs = append(errs, map[string]string{"code": "ProcessGraphInvalid", "message": "node " + id + " has no process_id"})
		case n.Namespace == nil && !stored && !slices.Contains(fakeProcesses, n.ProcessID):
			errs = append(errs, map[string]string{"code": "ProcessUnsupported", "message": "process " + n.ProcessID + " is not available"})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"errors": errs})
}

// fakeProcesses are the predefined processes the fake's validation knows.
var fakeProcesses = []string{"add", "aggregate_spatial", "apply", "eq", "load_collection", "lte", "mean", "median",
	"ndvi", "reduce_dimension", "resample_spatial", "save_result"}
