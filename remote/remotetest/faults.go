package remotetest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Faults make the fake back-end misbehave the way real back-ends and the
// proxies in front of them do. The zero value injects nothing.
type Faults struct {
	// Seed makes the random choices repeatable (0 means 1).
	Seed uint64
	// Latency is added to every API request, in real time.
	Latency time.Duration
	// ErrorRate is the fraction of API requests answered 500 (openEO JSON),
	// 502 (an HTML page, as proxies send) or 503 (InfrastructureBusy). Half
	// of the failures of POST /jobs come after the job was created, as when
	// an answer is lost on its way back.
	ErrorRate float64
	// MaxRate is the requests per second above which the back-end answers
	// 429 with Retry-After (0: no limit). Counted over the last second of
	// the server's Clock, by each request's arrival.
	MaxRate int
	// FailingAssets are asset names (as in Options.AssetNames) whose
	// downloads are answered FailingAssetStatus (default 500) every time,
	// until SetFaults changes it.
	FailingAssets      []string
	FailingAssetStatus int
	// MaxRatePerClient is the requests per second of one client above
	// which the back-end answers that client 429 with a Retry-After that
	// says when its window has room again (0: no limit). A client is a
	// user (by the bearer token it sends), or an address for requests
	// without a token. Counted like MaxRate, refused requests included, as
	// back-ends that rate-limit per user do.
	MaxRatePerClient int
	// DropRate is the fraction of asset downloads whose connection is cut in
	// the middle of the body.
	DropRate float64
	// TokenTTL makes access tokens expire this long after they were issued
	// (server clock): requests with them get 403 TokenInvalid.
	TokenTTL time.Duration
	// LinkTTL makes asset links expire this long after the result document
	// was served (server clock): downloads get 410 ResultLinkExpired.
	LinkTTL time.Duration
	// ExpiredLinks makes the next this many result documents hand out links
	// that have already expired (410 ResultLinkExpired on download).
	ExpiredLinks int
	// PaymentRequired makes every start answer 402 PaymentRequired.
	PaymentRequired bool
	// ListError makes every job listing (GET /jobs) answer 500, while the
	// other requests, GET /jobs/{id} included, work.
	ListError bool
	// IgnoreStart makes a start answer 202 Accepted but leave the job
	// created, as a back-end that loses the start does.
	IgnoreStart bool
	// LostCreates makes the next this many job creations (POST /jobs)
	// create the job but answer 500, as when the answer is lost.
	LostCreates int
	// FailedCreates makes the next this many job creations (POST /jobs)
	// answer 500 without creating a job, as a back-end that fails before
	// it stores the job.
	FailedCreates int
	// LostStarts makes the next this many starts take effect but answer
	// 500, as when the answer is lost on its way back.
	LostStarts int
	// IgnoreCancel makes a cancel answer 204 but leave the job as it was.
	IgnoreCancel bool
	// ConcurrentJobLimit makes a start answer 400 ConcurrentJobLimit while
	// this many jobs are queued or running (0: no limit).
	ConcurrentJobLimit int
}

// SetFaults replaces the faults the server injects.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Faults = f
	seed := f.Seed
	if seed == 0 {
		seed = 1
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Arrivals returns when (by the server's Clock) each request of kind key
// ("GET /jobs", "POST /jobs/{job_id}/results", ...) arrived, in order of
// handling.
func (s *Server) Arrivals(key string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.arrivals[key])
}

// PeakRate returns the most requests the server received within one second.
func (s *Server) PeakRate() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRate
}

// Injected returns how many faults of each kind the server injected, keyed
// "500", "502", "503", "429", "drop", "lost-create", "expired-links",
// "failing-asset".
func (s *Server) Injected() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.injected)
}

// admit counts a request against the rate window and decides the fault to
// inject, if any: "" for none. The caller holds s.mu.
func (s *Server) admitLocked(key, client string, arrived time.Time) string {
	// Requests are stamped when they arrive, before waiting for the lock, and
	// kept in order: a request held up behind a slow one still counts when it came.
	at, _ := slices.BinarySearchFunc(s.recent, arrived, time.Time.Compare)
	s.recent = slices.Insert(s.recent, at, arrived)
	cut := s.recent[len(s.recent)-1].Add(-time.Second)
	i := 0
	for i < len(s.recent) && !s.recent[i].After(cut) {
		i++
	}
	s.recent = s.recent[i:]
	s.peakRate = max(s.peakRate, s.inWindowLocked(arrived))
	f := s.opts.Faults
	if f.MaxRate > 0 && s.inWindowLocked(arrived) > f.MaxRate {
		s.injected["429"]++
		return "429"
	}
	if f.MaxRatePerClient > 0 {
		if wait, over := s.admitClientLocked(client, arrived, f.MaxRatePerClient); over {
			s.injected["429"]++
			return fmt.Sprintf("429:%d", int(math.Ceil(wait.Seconds())))
		}
	}
	if f.ErrorRate > 0 && s.rng.Float64() < f.ErrorRate {
		kind := []string{"500", "502", "503"}[s.rng.IntN(3)]
		if key == "POST /jobs" && s.rng.IntN(2) == 0 {
			s.injected["lost-create"]++
			return "lost-" + kind
		}
		s.injected[kind]++
		return kind
	}
	return ""
}

// admitClientLocked counts a request of client against its own window of
// one second and reports whether it is over limit, and then how long until
// the window has room again. The caller holds s.mu.
func (s *Server) admitClientLocked(client string, arrived time.Time, limit int) (time.Duration, bool) {
	w := s.perClient[client]
	at, _ := slices.BinarySearchFunc(w, arrived, time.Time.Compare)
	w = slices.Insert(w, at, arrived)
	cut := w[len(w)-1].Add(-time.Second)
	i := 0
	for i < len(w) && !w[i].After(cut) {
		i++
	}
	w = w[i:]
	s.perClient[client] = w
	lo, _ := slices.BinarySearchFunc(w, arrived.Add(-time.Second), time.Time.Compare)
	hi, _ := slices.BinarySearchFunc(w, arrived.Add(time.Nanosecond), time.Time.Compare)
	if hi-lo <= limit {
		return 0, false
	}
	// Room again once all but limit-1 of the window's requests left it.
	return w[hi-limit].Add(time.Second).Sub(arrived), true
}

// clientOf names the client of a request for MaxRatePerClient: the user
// its bearer token was issued to, else the token, else its address.
func (s *Server) clientOf(r *http.Request) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if user, ok := s.tokenUser[tok]; ok {
			return "user:" + user
		}
		return "token:" + tok
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "addr:" + host
}

// inWindowLocked counts the requests that arrived in the second up to t.
func (s *Server) inWindowLocked(t time.Time) int {
	lo, _ := slices.BinarySearchFunc(s.recent, t.Add(-time.Second), time.Time.Compare)
	hi, _ := slices.BinarySearchFunc(s.recent, t.Add(time.Nanosecond), time.Time.Compare)
	return hi - lo
}

// writeFault answers a request with an injected failure.
func writeFault(w http.ResponseWriter, kind string) {
	switch kind {
	case "429":
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", "request rate above the limit")
	default:
		if after, ok := strings.CutPrefix(kind, "429:"); ok {
			w.Header().Set("Retry-After", after)
			writeError(w, http.StatusTooManyRequests, "TooManyRequests", "request rate of this client above the limit")
		}
	case "500":
		writeError(w, http.StatusInternalServerError, "Internal", "injected server error")
	case "502":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>\n"))
	case "503":
		writeError(w, http.StatusServiceUnavailable, "InfrastructureBusy", "injected: try again later")
	}
}

// serveWithFaults runs h under the configured faults.
func (s *Server) serveWithFaults(key string, arrived time.Time, w http.ResponseWriter, r *http.Request, h handlerFunc) {
	s.mu.Lock()
	s.requests[key]++
	s.arrivals[key] = append(s.arrivals[key], arrived)
	fault := s.admitLocked(key, s.clientOf(r), arrived)
	if fault == "" && key == "POST /jobs" && s.opts.Faults.LostCreates > 0 {
		s.opts.Faults.LostCreates--
		s.injected["lost-create"]++
		fault = "lost-500"
	}
	if fault == "" && key == "POST /jobs" && s.opts.Faults.FailedCreates > 0 {
		s.opts.Faults.FailedCreates--
		s.injected["failed-create"]++
		fault = "500"
	}
	if fault == "" && key == "GET /jobs" && s.opts.Faults.ListError {
		fault = "500"
		s.injected["list-500"]++
	}
	latency := s.opts.Faults.Latency
	s.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	switch {
	case fault == "":
		h(w, r)
	case len(fault) > 5 && fault[:5] == "lost-":
		// The job is created, but its answer is replaced by a failure.
		h(httptest.NewRecorder(), r)
		writeFault(w, fault[5:])
	default:
		writeFault(w, fault)
	}
}

// dropWriter cuts the connection once limit bytes of the body were written.
type dropWriter struct {
	http.ResponseWriter
	limit int
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if len(p) > d.limit {
		n, _ := d.ResponseWriter.Write(p[:d.limit])
		if f, ok := d.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		d.limit -= n
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	d.limit -= len(p)
	return d.ResponseWriter.Write(p)
}

func unixParam(r *http.Request, name string) (time.Time, bool) {
	v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}
