// Package remote is a client for the openEO API (1.2): version discovery,
// capabilities, basic and bearer authentication, batch jobs, results,
// downloads, logs and user-defined process graphs.
//
// Every method takes a context and makes exactly one logical request (a
// listing follows its pages). The client does not retry: callers decide what
// is safe to repeat. Errors from the back-end are *APIError values that match
// the package's sentinels (ErrJobNotFound, ErrAuth, ...) with errors.Is.
package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
}

// Client talks to one openEO back-end. It is safe for concurrent use once
// authenticated.
type Client struct {
	root      *url.URL // API root, always ending in "/"
	http      *http.Client
	userAgent string
	bearer    string // the Authorization header value, "" before auth
	tag       string // see WithJobTag
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
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "openeo-batch-worker"
	}
	return &Client{root: u, http: hc, userAgent: ua}, nil
}

// Connect finds the API root of the back-end a user typed (by its
// /.well-known/openeo document, as the Python client does) and returns a
// client for it. When discovery fails the URL is used as the API root.
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
		return c, nil // not an error: the URL is the API root itself
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
		return c, nil
	}
	return New(best, &Options{HTTPClient: c.http, UserAgent: c.userAgent})
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

// SetToken authenticates with a bearer token in openEO form,
// "<method>/<provider>/<token>", for example "basic//abc" or
// "oidc/egi/eyJ...". A token without a slash is taken as a basic token.
func (c *Client) SetToken(token string) {
	if !strings.Contains(token, "/") {
		token = "basic//" + token
	}
	c.bearer = "Bearer " + token
}

// AuthenticateBasic logs in with a user name and password (GET
// /credentials/basic) and keeps the access token.
func (c *Client) AuthenticateBasic(ctx context.Context, username, password string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("credentials/basic"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(username+":"+password)))
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.doJSON(req, &out); err != nil {
		return fmt.Errorf("basic authentication: %w", err)
	}
	if out.AccessToken == "" {
		return errors.New("basic authentication: back-end sent no access_token")
	}
	c.bearer = "Bearer basic//" + out.AccessToken
	return nil
}

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
	req, err := c.newRequest(ctx, http.MethodPost, c.endpoint("jobs"), bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if id := resp.Header.Get("OpenEO-Identifier"); id != "" {
		return id, nil
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return path.Base(strings.TrimSuffix(loc, "/")), nil
	}
	return "", fmt.Errorf("create job: back-end sent neither OpenEO-Identifier nor Location (status %d)", resp.StatusCode)
}

// StartJob queues a created job for processing.
func (c *Client) StartJob(ctx context.Context, id string) error {
	return c.noContent(ctx, http.MethodPost, c.endpoint("jobs/%s/results", id))
}

// CancelJob stops a queued or running job.
func (c *Client) CancelJob(ctx context.Context, id string) error {
	return c.noContent(ctx, http.MethodDelete, c.endpoint("jobs/%s/results", id))
}

// DeleteJob deletes a job and its results.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	return c.noContent(ctx, http.MethodDelete, c.endpoint("jobs/%s", id))
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
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("list %s: more than %d pages, giving up", key, maxPages)
		}
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
	req, err := c.newRequest(ctx, http.MethodGet, c.endpoint("jobs/%s/results", id), nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.doJSON(req, &raw); err != nil {
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
	return listAll[LogEntry](ctx, c, c.endpoint("jobs/%s/logs", id)+"?level="+url.QueryEscape(level), "logs")
}

// ProcessGraph returns a user-defined process (GET /process_graphs/{id}) as
// the back-end sent it.
func (c *Client) ProcessGraph(ctx context.Context, id string) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, c.endpoint("process_graphs/%s", id), &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Download streams the file at href to dst. It writes dst+".part" and
// renames it when complete, so dst exists only whole. The openEO token is
// sent only when href is on the back-end's own host.
func (c *Client) Download(ctx context.Context, href, dst string) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, c.resolve(href), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	part := dst + ".part"
	f, err := os.Create(part)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("short body: %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, dst)
	}
	if err != nil {
		os.Remove(part)
		return 0, fmt.Errorf("download %s: %w", redactURL(req.URL.String()), err)
	}
	return n, nil
}

func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.bearer != "" && sameOrigin(req.URL, c.root) {
		req.Header.Set("Authorization", c.bearer)
	}
	return req, nil
}

// sameOrigin reports whether u is on the back-end's own scheme and host: the
// only place the token may go.
func sameOrigin(u, root *url.URL) bool {
	return strings.EqualFold(u.Scheme, root.Scheme) && strings.EqualFold(u.Host, root.Host)
}

// do sends req and turns a non-2xx answer into an *APIError.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, redactURL(req.URL.String()), err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return nil, newAPIError(resp, body)
}

func (c *Client) doJSON(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", req.Method, redactURL(req.URL.String()), err)
	}
	if len(body) > maxJSON {
		return fmt.Errorf("%s %s: answer larger than %d bytes", req.Method, redactURL(req.URL.String()), maxJSON)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, redactURL(req.URL.String()), err)
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, u string, out any) error {
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, out)
}

func (c *Client) noContent(ctx context.Context, method, u string) error {
	req, err := c.newRequest(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.Body.Close()
}
