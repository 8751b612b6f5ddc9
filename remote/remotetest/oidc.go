package remotetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// OIDCProvider is a fake OpenID Connect provider on 127.0.0.1 with the
// grants openEO clients use: client credentials, refresh tokens (rotated
// on each use) and the device code flow with PKCE. Its access tokens
// expire after TokenTTL on its clock.
type OIDCProvider struct {
	// URL is the issuer.
	URL string
	// ID is the provider id the back-end lists (default "fake").
	ID string
	// ClientID and ClientSecret are the confidential client for the client
	// credentials grant; PublicClientID is a default client without secret
	// (device code with PKCE, refresh tokens).
	ClientID, ClientSecret, PublicClientID string
	// TokenTTL is the lifetime of access tokens (default 5 minutes).
	TokenTTL time.Duration
	// DeviceInterval is the poll interval the device flow announces, in
	// seconds (default 0: poll at once).
	DeviceInterval int

	clock Clock
	srv   *httptest.Server

	mu       sync.Mutex
	access   map[string]time.Time // access token -> expiry
	refresh  map[string]string    // refresh token -> client id
	devices  map[string]*device   // device code -> state
	byUser   map[string]*device   // user code -> state
	grants   map[string]int       // grant type -> tokens issued
	rejected int
	failing  int // token requests still to answer 503
}

// FailTokenRequests makes the next n token requests answer 503 with an
// HTML page, as an overloaded proxy in front of the provider does.
func (p *OIDCProvider) FailTokenRequests(n int) {
	p.mu.Lock()
	p.failing = n
	p.mu.Unlock()
}

type device struct {
	clientID, challenge, userCode string
	approved, denied              bool
	polls                         int
}

// NewOIDCProvider starts a fake OIDC provider. clock may be nil (real time).
func NewOIDCProvider(clock Clock) *OIDCProvider {
	if clock == nil {
		clock = realClock{}
	}
	p := &OIDCProvider{
		ID: "fake", ClientID: "robot", ClientSecret: "s3cret-robot", PublicClientID: "public-cli",
		TokenTTL: 5 * time.Minute, clock: clock,
		access: map[string]time.Time{}, refresh: map[string]string{},
		devices: map[string]*device{}, byUser: map[string]*device{}, grants: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /device", p.deviceAuth)
	p.srv = httptest.NewUnstartedServer(mux)
	p.URL = "http://" + p.srv.Listener.Addr().String() // before serving: handlers read it
	p.srv.Start()
	return p
}

// Close stops the provider.
func (p *OIDCProvider) Close() { p.srv.Close() }

// Approve approves the device login with user code, as the user would in a
// browser. It reports whether the code was known.
func (p *OIDCProvider) Approve(userCode string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.byUser[userCode]
	if d != nil {
		d.approved = true
	}
	return d != nil
}

// IssueRefreshToken makes a refresh token for the public client, as a past
// login would have.
func (p *OIDCProvider) IssueRefreshToken() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newRefreshLocked(p.PublicClientID)
}

// Grants returns how many tokens each grant type issued.
func (p *OIDCProvider) Grants() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.grants)
}

// valid reports whether an openEO bearer "oidc/<id>/<token>" carries a live
// access token of this provider.
func (p *OIDCProvider) valid(bearer string) bool {
	tok, ok := strings.CutPrefix(bearer, "oidc/"+p.ID+"/")
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.access[tok]
	return ok && p.clock.Now().Before(exp)
}

func (p *OIDCProvider) providerDoc() map[string]any {
	return map[string]any{
		"id": p.ID, "issuer": p.URL, "title": "Fake identity provider", "scopes": []string{"openid", "email"},
		"default_clients": []map[string]any{{
			"id":          p.PublicClientID,
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code+pkce", "refresh_token"},
		}},
	}
}

func (p *OIDCProvider) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": p.URL, "token_endpoint": p.URL + "/token", "device_authorization_endpoint": p.URL + "/device",
		"scopes_supported":      []string{"openid", "email", "offline_access"},
		"grant_types_supported": []string{"client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
	})
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (p *OIDCProvider) newRefreshLocked(clientID string) string {
	t := "rt-" + randomToken()
	p.refresh[t] = clientID
	return t
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (p *OIDCProvider) deviceAuth(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	if r.Form.Get("client_id") != p.PublicClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	}
	if r.Form.Get("code_challenge_method") != "S256" || r.Form.Get("code_challenge") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "PKCE (S256) is required for this public client")
		return
	}
	d := &device{clientID: p.PublicClientID, challenge: r.Form.Get("code_challenge"), userCode: strings.ToUpper(randomToken()[:8])}
	code := "dc-" + randomToken()
	p.mu.Lock()
	p.devices[code], p.byUser[d.userCode] = d, d
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": code, "user_code": d.userCode, "verification_uri": p.URL + "/activate",
		"verification_uri_complete": p.URL + "/activate?code=" + d.userCode, "expires_in": 600, "interval": p.DeviceInterval,
	})
}

func (p *OIDCProvider) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f := r.Form
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing > 0 {
		p.failing--
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("<html><body>503 Service Temporarily Unavailable</body></html>"))
		return
	}
	grant := f.Get("grant_type")
	issue := func(clientID string, withRefresh bool) {
		tok := "at-" + randomToken()
		p.access[tok] = p.clock.Now().Add(p.TokenTTL)
		p.grants[grant]++
		out := map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(p.TokenTTL.Seconds()), "id_token": "not-used"}
		if withRefresh {
			out["refresh_token"] = p.newRefreshLocked(clientID)
		}
		writeJSON(w, http.StatusOK, out)
	}
	switch grant {
	case "client_credentials":
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = f.Get("client_id"), f.Get("client_secret")
		}
		if id != p.ClientID || secret != p.ClientSecret {
			p.rejected++
			oauthError(w, http.StatusUnauthorized, "invalid_client", "wrong client id or secret")
			return
		}
		issue(id, false)
	case "refresh_token":
		client, ok := p.refresh[f.Get("refresh_token")]
		if !ok || client != f.Get("client_id") {
			p.rejected++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or revoked refresh token")
			return
		}
		delete(p.refresh, f.Get("refresh_token")) // rotation: each refresh token works once
		issue(client, true)
	case "urn:ietf:params:oauth:grant-type:device_code":
		d := p.devices[f.Get("device_code")]
		if d == nil || d.clientID != f.Get("client_id") {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown device code")
			return
		}
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != d.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
			return
		}
		d.polls++
		switch {
		case d.denied:
			oauthError(w, http.StatusBadRequest, "access_denied", "the user refused")
		case !d.approved:
			oauthError(w, http.StatusBadRequest, "authorization_pending", "waiting for the user")
		default:
			delete(p.devices, f.Get("device_code"))
			issue(d.clientID, true)
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", grant)
	}
}
