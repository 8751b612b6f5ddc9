package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// FetchDefinition downloads a process definition published at rawURL (the
// "namespace" of a remote process, as the openEO Python client calls it)
// with a plain GET, retried with backoff like any request of this package
// (5xx, 429 with Retry-After, broken connections).
//
// It never sends credentials: the document is public and usually on
// another host than any back-end, and the openEO token must not leave its
// back-end. opts gives the HTTP client, User-Agent and retry policy (the
// rate limits and breaker of a Policy do not apply); nil means defaults.
// The answer must be a JSON document of at most 64 MiB. Without
// opts.Policy each attempt is bounded by DefinitionTimeout and retried at
// most DefinitionRetries times; a failure of the network says so.
func FetchDefinition(ctx context.Context, rawURL string, opts *Options) (json.RawMessage, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("process definition URL %q: want http(s)://host/path", rawURL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "openeo-batch-worker"
	}
	p := opts.Policy
	if p == nil {
		p = &Policy{Timeout: DefinitionTimeout, MaxRetries: DefinitionRetries}
	}
	pol := newPolicies(p)
	var doc json.RawMessage
	err = pol.runOutside(ctx, true, func() error {
		actx, cancel := context.WithTimeout(ctx, pol.p.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", ua)
		resp, err := hc.Do(req)
		if err != nil {
			return &transportError{fmt.Errorf("GET %s: %w", redactURL(rawURL), err)}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return newAPIError(resp, b)
		}
		if err != nil {
			return &transportError{fmt.Errorf("GET %s: read answer: %w", redactURL(rawURL), err)}
		}
		if len(b) > maxJSON {
			return fmt.Errorf("GET %s: answer larger than %d bytes", redactURL(rawURL), maxJSON)
		}
		if !json.Valid(b) {
			return fmt.Errorf("GET %s: the answer is not JSON", redactURL(rawURL))
		}
		doc = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("process definition at %s: %w", redactURL(rawURL), networkSaid(err, pol.p.MaxRetries))
	}
	return doc, nil
}

// DefinitionTimeout bounds one attempt to fetch a process definition
// (FetchDefinition, Client.ProcessGraph); DefinitionRetries bounds the
// retries after the first attempt.
const (
	DefinitionTimeout = 30 * time.Second
	DefinitionRetries = 2
)

// networkSaid adds to a failure of the network (ConnectionFailed) that it
// is one, and how many attempts were made; other errors are returned as
// they are.
func networkSaid(err error, retries int) error {
	if !ConnectionFailed(err) {
		return err
	}
	return &networkError{err: err, attempts: retries + 1}
}

// networkError is a request that failed for the network, after attempts.
type networkError struct {
	err      error
	attempts int
}

func (e *networkError) Error() string {
	return fmt.Sprintf("network failure after %d attempts: %v", e.attempts, e.err)
}

func (e *networkError) Unwrap() error { return e.err }

// ValidationError is one error POST /validation reports.
type ValidationError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Validate asks the back-end to check a process (POST /validation) without
// running it, and returns the errors it found: none means valid. Call it
// only where the capabilities list the endpoint (Capabilities.Supports).
// Validation changes nothing on the back-end, so it is retried like a read.
func (c *Client) Validate(ctx context.Context, p Process) ([]ValidationError, error) {
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, fmt.Errorf("encode process: %w", err)
	}
	var out struct {
		Errors []ValidationError `json:"errors"`
	}
	u := c.endpoint("validation")
	err = c.state.pol.run(ctx, true, false, http.MethodPost, u, func(ctx context.Context, permit func() error) error {
		r := request{method: http.MethodPost, url: u, body: b, out: &out}
		return c.attempt(ctx, &r, permit)
	})
	if err != nil {
		return nil, err
	}
	return out.Errors, nil
}
