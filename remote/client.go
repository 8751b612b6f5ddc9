// Package remote is a client for the openEO API (1.2): version discovery,
// capabilities, basic and bearer authentication, batch jobs, results,
// downloads, logs and user-defined process graphs.
//
// Every method takes a context and makes one logical request (a listing
// follows its pages). Requests go through the back-end's Policy: rate
// limits, a circuit breaker, per-attempt timeouts, and retries with backoff
// for failures that are safe to repeat (a request that changes state is
// repeated only when the failure shows it did not take effect). A refused
// token is renewed once. Errors from the back-end are *APIError values that
// match the package's sentinels (ErrJobNotFound, ErrAuth, ...) with
// errors.Is.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxJSON bounds the size of a JSON document read from a back-end.
const maxJSON = 64 << 20

// Options configures a Client.
type Options struct {
	// HTTPClient sends the requests; nil means a client with a 5 minute timeout.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// Policy sets retries, timeouts, rate limits and the circuit breaker;
	// nil means DefaultPolicy.
	Policy *Policy
}

// Client talks to one openEO back-end. It is safe for concurrent use once
// authenticated.
type Client struct {
	root      *url.URL // API root, always ending in "/"
	http      *http.Client
	userAgent string
	tag       string       // see WithJobTag
	state     *clientState // shared by the copies WithJobTag makes
}

// New returns a client for the API root apiURL, without version discovery.
func New(apiURL string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if !strings.Contains(apiURL, "://") {
		apiURL = "https://" + apiURL
	}
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, fmt.Errorf("back-end URL %q: %w", apiURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("back-end URL %q: want http(s)://host[/path]", apiURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	hc := opts.HTTPClient
	if hc == nil {
		// One connection pool per back-end, reused for every request.
		// Connecting is bounded apart from the answer, so that a back-end
		// that does not take connections is known as such in seconds.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.MaxIdleConnsPerHost = 32
		t.ResponseHeaderTimeout = 2 * time.Minute
		hc = &http.Client{Transport: t}
	}
	hc = guardRedirects(hc)
	ua := opts.UserAgent
	if ua == "" {
		ua = "openeo-batch-worker"
	}
	return &Client{root: u, http: hc, userAgent: ua, state: &clientState{pol: newPolicies(opts.Policy)}}, nil
}

// ConnectTimeout bounds the making of one connection (TCP and TLS each)
// by a Client made without Options.HTTPClient. The answer is bounded by
// Policy.Timeout.
const ConnectTimeout = 10 * time.Second

// Connect finds the API root of the back-end a user typed (by its
// /.well-known/openeo document, as the Python client does) and returns a
// client for it. When discovery finds no document the URL is used as the
// API root; when the back-end cannot be reached at all (no connection,
// ConnectionFailed) that is the error.
func Connect(ctx context.Context, rawURL string, opts *Options) (*Client, error) {
	c, err := New(rawURL, opts)
	if err != nil {
		return nil, err
	}
	var wk struct {
		Versions []struct {
			URL        string `json:"url"`
			APIVersion string `json:"api_version"`
			Production *bool  `json:"production"`
		} `json:"versions"`
	}
	if err := c.getJSON(ctx, c.root.String()+".well-known/openeo", &wk); err != nil {
		if ConnectionFailed(err) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
		// Not an error: the URL may be the API root itself, whose
		// capabilities say so.
		if err := c.checkCapabilities(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	best, bestProd := "", false
	var bestVer []int
	for _, v := range wk.Versions {
		ver := parseVersion(v.APIVersion)
		if ver == nil || ver[0] < 1 || v.URL == "" {
			continue
		}
		prod := v.Production == nil || *v.Production
		if best == "" || (prod && !bestProd) || (prod == bestProd && slices.Compare(ver, bestVer) > 0) {
			best, bestProd, bestVer = v.URL, prod, ver
		}
	}
	if best == "" {
		if err := c.checkCapabilities(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	nc, err := New(best, &Options{HTTPClient: c.http, UserAgent: c.userAgent})
	if err != nil {
		return nil, err
	}
	nc.state = c.state
	return nc, nil
}

func parseVersion(s string) []int {
	s, _, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	out := make([]int, 0, 3)
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	for len(out) < 3 {
		out = append(out, 0)
	}
	return out
}

// URL returns the API root.
func (c *Client) URL() string { return c.root.String() }

// endpoint joins an API path to the root without dropping the root's path
// (see JOBS.md section 0).
func (c *Client) endpoint(p string, segments ...string) string {
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	p = strings.TrimPrefix(p, "/")
	if len(segments) > 0 {
		p = fmt.Sprintf(p, toAny(segments)...)
	}
	return c.root.String() + p
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Requests returns how many HTTP requests the client (and the copies
// WithJobTag made of it) sent to the back-end so far, retries included.
func (c *Client) Requests() int64 { return c.state.sent.Load() }

// Available reports whether the client sends requests to the back-end
// now: false while its circuit breaker is open after too many failures.
func (c *Client) Available() bool { return c.state.pol.available() }

// UnavailableFor is how long requests are still held back after the
// back-end failed too often in a row (its breaker is open, see
// Policy.BreakerDelay); 0 while it is Available.
func (c *Client) UnavailableFor() time.Duration { return c.state.pol.unavailableFor() }

// WithJobTag returns a copy of c whose CreateJob marks every job it creates
// with tag (see TagMarker), so that a job whose creation was interrupted can
// be found again in the back-end's listing.
func (c *Client) WithJobTag(tag string) *Client {
	cc := *c
	cc.tag = tag
	return &cc
}

const tagPrefix, tagSuffix = "[openeo-batch-worker:", "]"

// TagMarker is the text CreateJob appends to a job's description for tag.
func TagMarker(tag string) string { return tagPrefix + tag + tagSuffix }

// JobTag returns the tag in a job description, or "".
func JobTag(description string) string {
	i := strings.LastIndex(description, tagPrefix)
	if i < 0 {
		return ""
	}
	rest := description[i+len(tagPrefix):]
	j := strings.Index(rest, tagSuffix)
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// checkCapabilities asks for the capabilities at the client's root (GET /)
// and returns an error wrapping ErrNotOpenEO when the answer is not an
// openEO capabilities document (no api_version): a web page, another API.
// Failures of the network or of the server (5xx) are returned as they are.
func (c *Client) checkCapabilities(ctx context.Context) error {
	var caps struct {
		APIVersion string `json:"api_version"`
	}
	err := c.getJSON(ctx, c.root.String(), &caps)
	var apiErr *APIError
	switch {
	case err == nil && caps.APIVersion != "":
		return nil
	case err == nil:
		return fmt.Errorf("GET %s: the answer has no api_version (%w)", redactURL(c.root.String()), ErrNotOpenEO)
	case ConnectionFailed(err) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil ||
		errors.As(err, &apiErr) && (apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusTooManyRequests || errors.Is(err, ErrAuth)):
		return err
	default:
		return fmt.Errorf("%w (%w)", err, ErrNotOpenEO)
	}
}

// Capabilities returns the back-end's capabilities (GET /).
func (c *Client) Capabilities(ctx context.Context) (*Capabilities, error) {
	var caps Capabilities
	if err := c.getJSON(ctx, c.root.String(), &caps); err != nil {
		return nil, err
	}
	return &caps, nil
}

// CreateJob creates a batch job and returns its id.
func (c *Client) CreateJob(ctx context.Context, job *JobRequest) (string, error) {
	body := *job
	if c.tag != "" {
		marker := TagMarker(c.tag)
		if body.Description != "" {
			marker = body.Description + "\n\n" + marker
		}
		body.Description = marker
	}
	b, err := json.Marshal(&body)
	if err != nil {
		return "", fmt.Errorf("encode job: %w", err)
	}
	var id string
	err = c.call(ctx, request{method: http.MethodPost, url: c.endpoint("jobs"), body: b, handle: func(resp *http.Response) error {
		if id = resp.Header.Get("OpenEO-Identifier"); id != "" {
			return nil
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			id = path.Base(strings.TrimSuffix(loc, "/"))
			return nil
		}
		return fmt.Errorf("create job: back-end sent neither OpenEO-Identifier nor Location (status %d)", resp.StatusCode)
	}})
	return id, err
}

// StartJob queues a created job for processing.
func (c *Client) StartJob(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodPost, url: c.endpoint("jobs/%s/results", id), start: true})
}

// CancelJob stops a queued or running job.
func (c *Client) CancelJob(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, url: c.endpoint("jobs/%s/results", id)})
}

// DeleteJob deletes a job and its results.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, url: c.endpoint("jobs/%s", id)})
}

// GetJob returns the full description of a job, usage and costs included.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, c.endpoint("jobs/%s", id), &raw); err != nil {
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	j.Raw = raw
	return &j, nil
}

// CheckAccess asks for the user's account (GET /me): it proves that the
// back-end answers and accepts the client's credentials, at the cost of
// one small request. A back-end without /me (404 or another refusal that
// is not about the credentials) passes: it answered.
func (c *Client) CheckAccess(ctx context.Context) error {
	var me map[string]json.RawMessage
	err := c.getJSON(ctx, c.endpoint("me"), &me)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 &&
		!errors.Is(err, ErrAuth) && apiErr.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	return err
}

// ListJobs returns every job of the user, following the listing's pages
// (limit pageSize, 0 for the back-end's default).
func (c *Client) ListJobs(ctx context.Context, pageSize int) ([]Job, error) {
	first := c.endpoint("jobs")
	if pageSize > 0 {
		first += "?limit=" + strconv.Itoa(pageSize)
	}
	return listAll[Job](ctx, c, first, "jobs")
}

// maxPages bounds the pages of one listing, against a back-end whose next
// links go round in circles.
const maxPages = 100000

// listAll follows a paginated listing from first along its "next" links
// and collects the items under key ("jobs", "logs").
func listAll[T any](ctx context.Context, c *Client, first, key string) ([]T, error) {
	var all []T
	next := first
	seen := map[string]bool{}
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("list %s: more than %d pages, giving up", key, maxPages)
		}
		if seen[next] {
			return nil, fmt.Errorf("list %s: the next link leads back to a page already read (%s)", key, redactURL(next))
		}
		seen[next] = true
		var page map[string]json.RawMessage
		if err := c.getJSON(ctx, next, &page); err != nil {
			return nil, err
		}
		var items []T
		var links []Link
		if err := json.Unmarshal(page[key], &items); err != nil && page[key] != nil {
			return nil, fmt.Errorf("list %s: %w", key, err)
		}
		if err := json.Unmarshal(page["links"], &links); err != nil && page["links"] != nil {
			return nil, fmt.Errorf("list %s: links: %w", key, err)
		}
		all = append(all, items...)
		next = ""
		for _, l := range links {
			if l.Rel == "next" && l.Href != "" {
				next = c.resolve(l.Href)
			}
		}
	}
	return all, nil
}

// resolve makes a link from the back-end absolute.
func (c *Client) resolve(href string) string {
	u, err := c.root.Parse(href)
	if err != nil {
		return href
	}
	return u.String()
}

// Results returns the result document of a finished job. For a job in
// error the back-end answers 424 with a log entry: that comes back as an
// *APIError with the entry's code and message.
func (c *Client) Results(ctx context.Context, id string) (*Results, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, c.endpoint("jobs/%s/results", id), &raw); err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("results of job %s: %w", id, err)
	}
	r.Raw = raw
	for k, a := range r.Assets {
		a.Href = c.resolve(a.Href)
		r.Assets[k] = a
	}
	return &r, nil
}

// Logs returns a job's log entries at level or above ("error", "warning",
// "info", "debug"), following offset pagination.
func (c *Client) Logs(ctx context.Context, id, level string) ([]LogEntry, error) {
	return c.LogsAfter(ctx, id, level, "")
}

// LogsAfter returns the log entries that came after the entry with id
// offset (all of them for ""), at level or above: for reading a running
// job's logs bit by bit.
func (c *Client) LogsAfter(ctx context.Context, id, level, offset string) ([]LogEntry, error) {
	q := url.Values{"level": {level}}
	if offset != "" {
		q.Set("offset", offset)
	}
	return listAll[LogEntry](ctx, c, c.endpoint("jobs/%s/logs", id)+"?"+q.Encode(), "logs")
}

// ProcessGraph returns a user-defined process (GET /process_graphs/{id}) as
// the back-end sent it.
//
// Each attempt is bounded by DefinitionTimeout and retried at most
// DefinitionRetries times: a process definition is small, and a back-end
// that does not send it soon is better reported than waited for. A
// failure of the network says so (ConnectionFailed stays true).
func (c *Client) ProcessGraph(ctx context.Context, id string) (json.RawMessage, error) {
	var raw json.RawMessage
	u := c.endpoint("process_graphs/%s", id)
	err := c.call(withMaxRetries(ctx, DefinitionRetries), request{method: http.MethodGet, url: u, timeout: DefinitionTimeout, out: &raw})
	if err != nil {
		return nil, networkSaid(err, DefinitionRetries)
	}
	return raw, nil
}

// request is one logical request.
type request struct {
	method, url string
	body        []byte
	header      http.Header
	start       bool          // a job start: subject to the start rate limit
	noAuth      bool          // send no token (logging in)
	download    bool          // DownloadTimeout instead of Timeout
	timeout     time.Duration // bounds each attempt, when less than the Policy's
	// prepare, when set, adjusts each attempt's request (a Range header).
	prepare func(*http.Request)
	// out receives the JSON answer; handle, when set, reads the answer
	// instead. Either runs inside the attempt, so a broken body is retried
	// like a broken connection.
	out    any
	handle func(*http.Response) error
}

func (r *request) idempotent() bool {
	return r.method != http.MethodPost && r.method != http.MethodPatch
}

// call sends r under the back-end's policies.
func (c *Client) call(ctx context.Context, r request) error {
	if err := checkLink(r.url); err != nil {
		return err
	}
	return c.state.pol.run(ctx, r.idempotent(), r.start, r.method, r.url, func(ctx context.Context, permit func() error) error {
		return c.attempt(ctx, &r, permit)
	})
}

// attempt sends r once. When the back-end refuses the token and a fresh
// one can be had, it returns a tokenRenewed error: the policy sends the
// request again at once (the refused request had no effect).
func (c *Client) attempt(ctx context.Context, r *request, permit func() error) error {
	timeout := c.state.pol.p.Timeout
	if r.download {
		timeout = c.state.pol.p.DownloadTimeout
	}
	if r.timeout > 0 && r.timeout < timeout {
		timeout = r.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.userAgent)
	if r.prepare != nil {
		r.prepare(req)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.out != nil {
		req.Header.Set("Accept", "application/json")
	}
	bearer := ""
	if auth := c.state.getAuth(); auth != nil && !r.noAuth && sameOrigin(req.URL, c.root) {
		if bearer, err = auth.Bearer(ctx); err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if err := permit(); err != nil {
		return err
	}
	c.state.sent.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return &transportError{fmt.Errorf("%s %s: %w", r.method, redactURL(r.url), err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		apiErr := newAPIError(resp, b)
		if bearer != "" && tokenInvalid(apiErr) && c.state.getAuth().Invalidate(bearer) {
			return &tokenRenewed{apiErr}
		}
		return apiErr
	}
	err = c.consume(resp, r)
	resp.Body.Close()
	return err
}

func (c *Client) consume(resp *http.Response, r *request) error {
	switch {
	case r.handle != nil:
		return r.handle(resp)
	case r.out != nil:
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
		if err != nil {
			return &transportError{fmt.Errorf("%s %s: read answer: %w", r.method, redactURL(r.url), err)}
		}
		if len(b) > maxJSON {
			return fmt.Errorf("%s %s: answer larger than %d bytes", r.method, redactURL(r.url), maxJSON)
		}
		if err := json.Unmarshal(b, r.out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", r.method, redactURL(r.url), err)
		}
		return nil
	default:
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return err
	}
}

func (c *Client) getJSON(ctx context.Context, u string, out any) error {
	return c.call(ctx, request{method: http.MethodGet, url: u, out: out})
}

// ErrUnsupportedLink means a link is not an http or https URL (file://,
// ftp://, s3:// ...): the client fetches nothing else.
var ErrUnsupportedLink = errors.New("not an http(s) link: only http and https links are fetched")

// checkLink refuses URLs that are not http(s), before anything is sent:
// such a request could never succeed, so it is not retried either.
func checkLink(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", redactURL(raw), err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" || u.Host == "" {
		return fmt.Errorf("%s: %w", redactURL(raw), ErrUnsupportedLink)
	}
	return nil
}

// sameOrigin reports whether u and root have the same origin (scheme, host
// and port, RFC 6454): the openEO token goes only to the back-end's own
// origin.
func sameOrigin(u, root *url.URL) bool {
	return strings.EqualFold(u.Scheme, root.Scheme) && strings.EqualFold(u.Hostname(), root.Hostname()) &&
		port(u) == port(root)
}

// port returns the port of u, the scheme's default when it has none.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// guardRedirects returns a copy of hc that drops the Authorization header
// when a redirect leads to another origin than the request's first URL:
// net/http drops it only for another host name, so a redirect to another
// port or from https to http would carry the token along. Every request of
// the client goes through it (API calls, downloads, logins, definitions
// fetched from other hosts), so the rule holds for all of them. hc's own
// CheckRedirect still runs after it.
func guardRedirects(hc *http.Client) *http.Client {
	cp := *hc
	next := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && !sameOrigin(req.URL, via[0].URL) {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}
