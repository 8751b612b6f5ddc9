package remote

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNoLogin means no stored OIDC login fits the back-end: log in once with
// the device flow (worker login URL).
var ErrNoLogin = errors.New("no stored OpenID Connect login for this back-end")

// Grant types as openEO lists them in default_clients.
const (
	GrantRefreshToken   = "refresh_token"
	GrantDeviceCode     = "urn:ietf:params:oauth:grant-type:device_code"
	GrantDeviceCodePKCE = "urn:ietf:params:oauth:grant-type:device_code+pkce"
)

// OIDCProvider is an entry of GET /credentials/oidc.
type OIDCProvider struct {
	ID             string       `json:"id"`
	Issuer         string       `json:"issuer"`
	Title          string       `json:"title"`
	Scopes         []string     `json:"scopes"`
	DefaultClients []OIDCClient `json:"default_clients"`
}

// OIDCClient is a default client of a provider.
type OIDCClient struct {
	ID         string   `json:"id"`
	GrantTypes []string `json:"grant_types"`
}

// DeviceCode is what a user needs to log in with the device flow.
type DeviceCode struct {
	VerificationURI         string
	VerificationURIComplete string
	UserCode                string
	ExpiresIn               time.Duration
}

// OIDCOptions configures OpenID Connect authentication. The zero value
// picks provider and client as the Python client does.
type OIDCOptions struct {
	// ProviderID picks the provider; empty: OPENEO_AUTH_PROVIDER_ID if the
	// back-end lists it, else the only provider, else the first.
	ProviderID string
	// ClientID and ClientSecret; empty: the client Clients gives for the
	// chosen provider, else a default client of the provider that offers
	// the grant the flow needs.
	ClientID, ClientSecret string
	// Clients looks up a client configured for a provider, such as the
	// Python client's auth-config.json (AuthConfig.OIDCClient); may be nil.
	Clients func(providerID string) (id, secret string, err error)
	// Store keeps refresh tokens (the Python client's refresh-tokens.json);
	// nil keeps none.
	Store *TokenStore
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Prompt shows the user where to log in (device flow); required there.
	Prompt func(DeviceCode)
	// MaxPollTime bounds the wait for the user in the device flow (default 5m).
	MaxPollTime time.Duration
	// Now tells the time, to renew tokens before they expire; nil: time.Now.
	Now func() time.Time
}

func (o *OIDCOptions) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

func (o *OIDCOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// OIDCProviders lists the back-end's identity providers.
func (c *Client) OIDCProviders(ctx context.Context) ([]OIDCProvider, error) {
	var out struct {
		Providers []OIDCProvider `json:"providers"`
	}
	if err := c.call(ctx, request{method: http.MethodGet, url: c.endpoint("credentials/oidc"), noAuth: true, out: &out}); err != nil {
		return nil, fmt.Errorf("list OpenID Connect providers: %w", err)
	}
	if len(out.Providers) == 0 {
		return nil, errors.New("the back-end lists no OpenID Connect provider")
	}
	return out.Providers, nil
}

// oidcSession is a chosen provider and client with the provider's endpoints.
type oidcSession struct {
	c                   *Client
	provider            OIDCProvider
	issuer              string // without trailing slash
	tokenURL, deviceURL string
	supported           []string
	clientID, secret    string
	fromDefaults        bool
	opts                *OIDCOptions
}

// oidcSetup picks provider and client; wants lists acceptable grant sets
// for a default client (any one set fully offered will do).
func (c *Client) oidcSetup(ctx context.Context, o *OIDCOptions, clientID, secret string, wants ...[]string) (*oidcSession, error) {
	providers, err := c.OIDCProviders(ctx)
	if err != nil {
		return nil, err
	}
	var p *OIDCProvider
	ids := make([]string, len(providers))
	for i := range providers {
		ids[i] = providers[i].ID
	}
	pick := func(id string) *OIDCProvider {
		for i := range providers {
			if providers[i].ID == id {
				return &providers[i]
			}
		}
		return nil
	}
	switch {
	case o.ProviderID != "":
		if p = pick(o.ProviderID); p == nil {
			return nil, fmt.Errorf("OpenID Connect provider %q is not offered by the back-end (offered: %s)", o.ProviderID, strings.Join(ids, ", "))
		}
	case pick(o.getenv("OPENEO_AUTH_PROVIDER_ID")) != nil:
		p = pick(o.getenv("OPENEO_AUTH_PROVIDER_ID"))
	default:
		p = &providers[0] // the only one, or the back-end's default (first)
	}
	s := &oidcSession{c: c, provider: *p, issuer: normalizeURL(p.Issuer), clientID: clientID, secret: secret, opts: o}
	if s.clientID == "" && o.Clients != nil {
		if s.clientID, s.secret, err = o.Clients(p.ID); err != nil {
			return nil, err
		}
	}
	if s.clientID == "" {
		for _, dc := range p.DefaultClients {
			for _, want := range wants {
				if allIn(want, dc.GrantTypes) {
					s.clientID, s.fromDefaults = dc.ID, true
					break
				}
			}
			if s.clientID != "" {
				break
			}
		}
		if s.clientID == "" {
			return nil, fmt.Errorf("provider %q has no default client for this login (needs grants %v): give a client id", p.ID, wants)
		}
	}
	var disc struct {
		TokenEndpoint  string   `json:"token_endpoint"`
		DeviceEndpoint string   `json:"device_authorization_endpoint"`
		Scopes         []string `json:"scopes_supported"`
	}
	if err := s.get(ctx, s.issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, fmt.Errorf("OpenID Connect discovery of %s: %w", s.issuer, err)
	}
	if disc.TokenEndpoint == "" {
		return nil, fmt.Errorf("OpenID Connect discovery of %s: no token_endpoint", s.issuer)
	}
	s.tokenURL, s.deviceURL, s.supported = disc.TokenEndpoint, disc.DeviceEndpoint, disc.Scopes
	return s, nil
}

func allIn(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// scope is the sorted union of openid and the provider's scopes, limited to
// what the provider supports, plus offline_access for a refresh token.
func (s *oidcSession) scope(offline bool) string {
	set := map[string]bool{"openid": true}
	for _, sc := range s.provider.Scopes {
		set[sc] = true
	}
	var out []string
	for sc := range set {
		if len(s.supported) == 0 && sc != "openid" {
			continue
		}
		if len(s.supported) == 0 || slices.Contains(s.supported, sc) {
			out = append(out, sc)
		}
	}
	if offline && slices.Contains(s.supported, "offline_access") && !slices.Contains(out, "offline_access") {
		out = append(out, "offline_access")
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// get and postForm talk to the provider: no openEO token, the back-end's
// connection pool and policy.
func (s *oidcSession) get(ctx context.Context, u string, out any) error {
	return s.c.call(ctx, request{method: http.MethodGet, url: u, noAuth: true, out: out})
}

// tokenResponse is the answer of a token endpoint.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
}

// postForm posts to the token or device endpoint, retried under the
// back-end's retry policy: a grant that uses up what it is given (a
// rotating refresh token) is idempotent=false, and so sent again only when
// it surely did not arrive. OAuth errors come back as *OAuthError.
func (s *oidcSession) postForm(ctx context.Context, u string, form url.Values, out any, idempotent bool) error {
	return s.c.state.pol.runOutside(ctx, idempotent, func() error {
		ctx, cancel := context.WithTimeout(ctx, s.c.state.pol.p.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := s.c.http.Do(req)
		if err != nil {
			return &transportError{fmt.Errorf("POST %s: %w", u, err)}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return &transportError{fmt.Errorf("POST %s: %w", u, err)}
		}
		if resp.StatusCode != http.StatusOK {
			var oe OAuthError
			if json.Unmarshal(b, &oe) == nil && oe.Code != "" {
				oe.StatusCode = resp.StatusCode
				return &oe
			}
			return newAPIError(resp, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("POST %s: decode answer: %w", u, err)
		}
		return nil
	})
}

// OAuthError is an error answer of an OIDC provider.
type OAuthError struct {
	StatusCode  int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string {
	if e.Description != "" {
		return fmt.Sprintf("OpenID Connect: %s: %s", e.Code, e.Description)
	}
	return "OpenID Connect: " + e.Code
}

// grant asks the token endpoint for tokens.
func (s *oidcSession) grant(ctx context.Context, form url.Values) (*tokenResponse, error) {
	form.Set("client_id", s.clientID)
	if s.secret != "" {
		form.Set("client_secret", s.secret)
	}
	var tr tokenResponse
	// A refresh token may be good for one use only.
	idempotent := form.Get("grant_type") != "refresh_token"
	if err := s.postForm(ctx, s.tokenURL, form, &tr, idempotent); err != nil {
		return nil, err
	}
	if !strings.EqualFold(tr.TokenType, "bearer") || tr.AccessToken == "" {
		return nil, fmt.Errorf("OpenID Connect: token answer without a bearer access_token (token_type %q)", tr.TokenType)
	}
	return &tr, nil
}

// oidcAuth holds an access token and renews it before it expires, and
// when the back-end refuses it.
type oidcAuth struct {
	s     *oidcSession
	renew func(ctx context.Context) (*tokenResponse, error)

	mu      sync.Mutex
	token   string
	renewAt time.Time // zero: no known expiry
}

func (a *oidcAuth) set(tr *tokenResponse) {
	a.token = "oidc/" + a.s.provider.ID + "/" + tr.AccessToken
	a.renewAt = time.Time{}
	if tr.ExpiresIn > 0 {
		// Renew once four fifths of the lifetime are gone.
		a.renewAt = a.s.opts.now().Add(time.Duration(tr.ExpiresIn) * time.Second * 4 / 5)
	}
}

func (a *oidcAuth) Bearer(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && (a.renewAt.IsZero() || a.s.opts.now().Before(a.renewAt)) {
		return a.token, nil
	}
	tr, err := a.renew(ctx)
	if err != nil {
		return "", fmt.Errorf("renew access token: %w", err)
	}
	a.set(tr)
	return a.token, nil
}

func (a *oidcAuth) Invalidate(bearer string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == bearer {
		a.token = ""
	}
	return true
}

// start installs an oidcAuth whose first token is tr.
func (c *Client) startOIDC(s *oidcSession, tr *tokenResponse, renew func(context.Context) (*tokenResponse, error)) {
	a := &oidcAuth{s: s, renew: renew}
	a.set(tr)
	c.state.setAuth(a)
}

// AuthenticateOIDCClientCredentials logs in with a confidential client (a
// service account). Without a client id in o, it takes
// OPENEO_AUTH_CLIENT_ID and OPENEO_AUTH_CLIENT_SECRET. Renewal repeats the
// grant.
func (c *Client) AuthenticateOIDCClientCredentials(ctx context.Context, o *OIDCOptions) error {
	id, secret := o.ClientID, o.ClientSecret
	if id == "" {
		id, secret = o.getenv("OPENEO_AUTH_CLIENT_ID"), o.getenv("OPENEO_AUTH_CLIENT_SECRET")
	}
	if id == "" || secret == "" {
		return errors.New("OpenID Connect client credentials: set OPENEO_AUTH_CLIENT_ID and OPENEO_AUTH_CLIENT_SECRET")
	}
	s, err := c.oidcSetup(ctx, o, id, secret)
	if err != nil {
		return err
	}
	renew := func(ctx context.Context) (*tokenResponse, error) {
		return s.grant(ctx, url.Values{"grant_type": {"client_credentials"}, "scope": {s.scope(false)}})
	}
	tr, err := renew(ctx)
	if err != nil {
		return err
	}
	c.startOIDC(s, tr, renew)
	return nil
}

// AuthenticateOIDCRefreshToken logs in with the refresh token stored for
// the provider and client, keeping the rotated one. It returns ErrNoLogin
// when none is stored.
func (c *Client) AuthenticateOIDCRefreshToken(ctx context.Context, o *OIDCOptions) error {
	if o.Store == nil {
		return fmt.Errorf("%w: no token store", ErrNoLogin)
	}
	s, err := c.oidcSetup(ctx, o, o.ClientID, o.ClientSecret, []string{GrantRefreshToken})
	if err != nil {
		return err
	}
	rt, err := o.Store.Get(s.issuer, s.clientID)
	if err != nil {
		return err
	}
	if rt == "" {
		return fmt.Errorf("%w (provider %s, client %s)", ErrNoLogin, s.provider.ID, s.clientID)
	}
	var mu sync.Mutex
	renew := func(ctx context.Context) (*tokenResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		tr, err := s.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if err != nil {
			return nil, err
		}
		if tr.RefreshToken != "" && tr.RefreshToken != rt {
			rt = tr.RefreshToken
			if err := o.Store.Put(s.issuer, s.clientID, rt); err != nil {
				return nil, fmt.Errorf("store the renewed refresh token: %w", err)
			}
		}
		return tr, nil
	}
	tr, err := renew(ctx)
	if err != nil {
		return fmt.Errorf("log in with the stored refresh token: %w", err)
	}
	c.startOIDC(s, tr, renew)
	return nil
}

// AuthenticateOIDCDevice logs in with the device code flow (with PKCE when
// the client has no secret): o.Prompt tells the user where to confirm, and
// the refresh token is stored in o.Store for later runs.
func (c *Client) AuthenticateOIDCDevice(ctx context.Context, o *OIDCOptions) error {
	if o.Prompt == nil {
		return errors.New("OpenID Connect device login needs a prompt to show the user the link and code")
	}
	s, err := c.oidcSetup(ctx, o, o.ClientID, o.ClientSecret,
		[]string{GrantDeviceCodePKCE, GrantRefreshToken}, []string{GrantDeviceCode, GrantRefreshToken},
		[]string{GrantDeviceCodePKCE}, []string{GrantDeviceCode})
	if err != nil {
		return err
	}
	if s.deviceURL == "" {
		return fmt.Errorf("provider %s offers no device login (no device_authorization_endpoint)", s.provider.ID)
	}
	form := url.Values{"client_id": {s.clientID}, "scope": {s.scope(true)}}
	verifier := ""
	if s.secret == "" {
		b := make([]byte, 32)
		rand.Read(b)
		verifier = base64.RawURLEncoding.EncodeToString(b)
		sum := sha256.Sum256([]byte(verifier))
		form.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		form.Set("code_challenge_method", "S256")
	}
	var da struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
		VerificationURL string `json:"verification_url"` // Google's name
		Complete        string `json:"verification_uri_complete"`
		ExpiresIn       int    `json:"expires_in"`
		Interval        *int   `json:"interval"`
	}
	if err := s.postForm(ctx, s.deviceURL, form, &da, true); err != nil {
		return fmt.Errorf("start device login: %w", err)
	}
	interval := 5 * time.Second
	if da.Interval != nil {
		// Never poll faster than 5 times a second, whatever the provider says.
		interval = max(time.Duration(*da.Interval)*time.Second, 200*time.Millisecond)
	}
	o.Prompt(DeviceCode{VerificationURI: cmpOr(da.VerificationURI, da.VerificationURL), VerificationURIComplete: da.Complete,
		UserCode: da.UserCode, ExpiresIn: time.Duration(da.ExpiresIn) * time.Second})
	maxWait := o.MaxPollTime
	if maxWait == 0 {
		maxWait = 5 * time.Minute
	}
	deadline := time.Now().Add(maxWait)
	for {
		poll := url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.DeviceCode}}
		if verifier != "" {
			poll.Set("code_verifier", verifier)
		}
		tr, err := s.grant(ctx, poll)
		var oe *OAuthError
		switch {
		case err == nil:
			if tr.RefreshToken != "" && o.Store != nil {
				if err := o.Store.Put(s.issuer, s.clientID, tr.RefreshToken); err != nil {
					return fmt.Errorf("store refresh token: %w", err)
				}
			}
			rt := tr.RefreshToken
			var mu sync.Mutex
			c.startOIDC(s, tr, func(ctx context.Context) (*tokenResponse, error) {
				mu.Lock()
				defer mu.Unlock()
				if rt == "" {
					return nil, fmt.Errorf("%w: the device login gave no refresh token", ErrNoLogin)
				}
				next, err := s.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
				if err == nil && next.RefreshToken != "" {
					rt = next.RefreshToken
					if o.Store != nil {
						err = o.Store.Put(s.issuer, s.clientID, rt)
					}
				}
				return next, err
			})
			return nil
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
		case errors.As(err, &oe) && oe.Code == "slow_down":
			interval += 5 * time.Second
		default:
			return fmt.Errorf("device login: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device login: nobody confirmed within %v", maxWait)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// AuthenticateOIDC logs in as the Python client's authenticate_oidc does,
// without asking the user anything: OPENEO_AUTH_METHOD=client_credentials
// uses the client credentials grant; otherwise a stored refresh token. It
// returns ErrNoLogin when there is none: run the device flow once.
func (c *Client) AuthenticateOIDC(ctx context.Context, o *OIDCOptions) error {
	switch m := o.getenv("OPENEO_AUTH_METHOD"); m {
	case "client_credentials":
		return c.AuthenticateOIDCClientCredentials(ctx, o)
	case "":
		return c.AuthenticateOIDCRefreshToken(ctx, o)
	default:
		return fmt.Errorf("OPENEO_AUTH_METHOD=%q: the only supported value is client_credentials", m)
	}
}
