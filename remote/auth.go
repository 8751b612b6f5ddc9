package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Auth gives a Client its bearer tokens, in openEO form
// ("basic//<token>", "oidc/<provider>/<token>"), and renews them.
type Auth interface {
	// Bearer returns a token, fetching or renewing one when needed.
	Bearer(ctx context.Context) (string, error)
	// Invalidate is called when the back-end refused bearer (401/403
	// TokenInvalid). It reports whether a fresh token can be had, in which
	// case the request is sent once more.
	Invalidate(bearer string) bool
}

// staticToken is a token given by the user: it cannot be renewed.
type staticToken string

func (t staticToken) Bearer(context.Context) (string, error) { return string(t), nil }
func (staticToken) Invalidate(string) bool                   { return false }

// SetToken authenticates with a bearer token in openEO form,
// "<method>/<provider>/<token>", for example "basic//abc" or
// "oidc/egi/eyJ...". A token without a slash is taken as a basic token.
// Such a token is not renewed.
func (c *Client) SetToken(token string) {
	if !strings.Contains(token, "/") {
		token = "basic//" + token
	}
	c.state.setAuth(staticToken(token))
}

// SetAuth makes the client take its tokens from a.
func (c *Client) SetAuth(a Auth) { c.state.setAuth(a) }

// basicAuth logs in with a user name and password, and again whenever the
// back-end refuses the token (the Python client never renews basic tokens;
// a run of several days needs it).
type basicAuth struct {
	c          *Client
	user, pass string

	// login is held (a value in it) by the caller logging in; the others
	// wait for its token, or for their ctx to end. A channel, not a mutex
	// held across the request: the login may wait for the rate limit or a
	// back-off, and a goroutine blocked on a mutex would keep a
	// testing/synctest bubble's clock from reaching that wait's end.
	login chan struct{}
	mu    sync.Mutex // guards token
	token string
}

func newBasicAuth(c *Client, user, pass string) *basicAuth {
	return &basicAuth{c: c, user: user, pass: pass, login: make(chan struct{}, 1)}
}

func (a *basicAuth) Bearer(ctx context.Context) (string, error) {
	select {
	case a.login <- struct{}{}:
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
	defer func() { <-a.login }()
	a.mu.Lock()
	tok := a.token
	a.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	tok, err := a.c.loginBasic(ctx, a.user, a.pass)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	a.token = "basic//" + tok
	a.mu.Unlock()
	return "basic//" + tok, nil
}

func (a *basicAuth) Invalidate(bearer string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == bearer {
		a.token = ""
	}
	return true
}

// AuthenticateBasic logs in with a user name and password (GET
// /credentials/basic). The client logs in again when the token expires.
func (c *Client) AuthenticateBasic(ctx context.Context, username, password string) error {
	a := newBasicAuth(c, username, password)
	if _, err := a.Bearer(ctx); err != nil {
		return err
	}
	c.state.setAuth(a)
	return nil
}

func (c *Client) loginBasic(ctx context.Context, user, pass string) (string, error) {
	var out struct {
		AccessToken string `json:"access_token"`
	}
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	err := c.call(ctx, request{method: http.MethodGet, url: c.endpoint("credentials/basic"), header: h, noAuth: true, out: &out})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == "" && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 &&
		!errors.Is(err, ErrAuth) && apiErr.StatusCode != http.StatusTooManyRequests {
		// A 404 page, not an openEO error document: not an openEO API.
		return "", fmt.Errorf("basic authentication: %w (%w)", err, ErrNotOpenEO)
	}
	if err != nil {
		return "", fmt.Errorf("basic authentication: %w", err)
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("basic authentication: GET %s answered without an access_token (%w)", redactURL(c.endpoint("credentials/basic")), ErrNotOpenEO)
	}
	return out.AccessToken, nil
}

// tokenInvalid reports whether the back-end refused the token itself, so
// a fresh one may succeed.
func tokenInvalid(e *APIError) bool {
	if e.StatusCode != http.StatusUnauthorized && e.StatusCode != http.StatusForbidden {
		return false
	}
	return e.Code == "TokenInvalid" || e.Code == "AuthenticationRequired" || e.Code == ""
}

// tokenRenewed is a refusal of an expired token after which a fresh token
// is ready: the request is sent again at once, whatever its method.
type tokenRenewed struct{ *APIError }

func (e *tokenRenewed) Unwrap() error { return e.APIError }

// clientState is what copies of a Client (WithJobTag) share.
type clientState struct {
	mu   sync.RWMutex
	auth Auth
	pol  *policies
	now  func() time.Time
	sent atomic.Int64 // requests sent, see Client.Requests
}

func (s *clientState) setAuth(a Auth) {
	s.mu.Lock()
	s.auth = a
	s.mu.Unlock()
}

func (s *clientState) getAuth() Auth {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.auth
}
