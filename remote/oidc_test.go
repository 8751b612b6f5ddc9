package remote_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

type oidcSetup struct {
	clock    *remotetest.ManualClock
	provider *remotetest.OIDCProvider
	backend  *remotetest.Server
	store    *remote.TokenStore
}

func newOIDC(t *testing.T) *oidcSetup {
	clock := remotetest.NewManualClock()
	p := remotetest.NewOIDCProvider(clock)
	t.Cleanup(p.Close)
	b := remotetest.NewServer(remotetest.Options{Clock: clock, OIDC: p})
	t.Cleanup(b.Close)
	return &oidcSetup{clock: clock, provider: p, backend: b,
		store: &remote.TokenStore{Path: filepath.Join(t.TempDir(), "openeo", "refresh-tokens.json")}}
}

func (s *oidcSetup) client(t *testing.T) *remote.Client {
	c, err := remote.Connect(t.Context(), s.backend.URL, fast())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestOIDCClientCredentialsFromEnvironment(t *testing.T) {
	s := newOIDC(t)
	c := s.client(t)
	o := &remote.OIDCOptions{Now: s.clock.Now, Getenv: env(
		"OPENEO_AUTH_METHOD", "client_credentials",
		"OPENEO_AUTH_CLIENT_ID", s.provider.ClientID, "OPENEO_AUTH_CLIENT_SECRET", s.provider.ClientSecret)}
	if err := c.AuthenticateOIDC(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	for range 4 { // each step past the token's lifetime: renewed before use
		if _, err := c.ListJobs(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		s.clock.Advance(6 * time.Minute)
	}
	if g := s.provider.Grants()["client_credentials"]; g != 4 {
		t.Errorf("%d client-credential grants, want 4 (one per token lifetime)", g)
	}
	// Wrong secret: a clear error.
	bad := &remote.OIDCOptions{Getenv: env("OPENEO_AUTH_METHOD", "client_credentials",
		"OPENEO_AUTH_CLIENT_ID", s.provider.ClientID, "OPENEO_AUTH_CLIENT_SECRET", "nope")}
	err := s.client(t).AuthenticateOIDC(t.Context(), bad)
	var oe *remote.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_client" {
		t.Errorf("wrong secret: err = %v", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Error("the error shows the secret")
	}
}

func TestOIDCDeviceLoginThenRefreshToken(t *testing.T) {
	s := newOIDC(t)
	c := s.client(t)
	var shown remote.DeviceCode
	o := &remote.OIDCOptions{Store: s.store, Now: s.clock.Now, Prompt: func(dc remote.DeviceCode) {
		shown = dc
		s.provider.Approve(dc.UserCode) // the user confirms in a browser
	}}
	if err := c.AuthenticateOIDCDevice(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if shown.UserCode == "" || !strings.HasPrefix(shown.VerificationURI, s.provider.URL) {
		t.Errorf("prompt got %+v", shown)
	}
	if _, err := c.ListJobs(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.store.Path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token store: %v, mode %v", err, st.Mode())
	}

	// A later run logs in with the stored refresh token, without the user.
	c2 := s.client(t)
	if err := c2.AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Store: s.store, Now: s.clock.Now}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.clock.Advance(6 * time.Minute)
		if _, err := c2.ListJobs(t.Context(), 0); err != nil {
			t.Fatalf("after token expiry: %v", err)
		}
	}
	// Refresh tokens rotate: the store must hold the newest, which works.
	c3 := s.client(t)
	if err := c3.AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Store: s.store, Now: s.clock.Now}); err != nil {
		t.Errorf("stored token after rotations: %v", err)
	}
	b, _ := os.ReadFile(s.store.Path)
	if !strings.Contains(string(b), s.provider.URL) || !strings.Contains(string(b), s.provider.PublicClientID) {
		t.Errorf("store layout: %s", b)
	}
}

// The back-end refuses a token the client still thinks valid: renewed once.
func TestOIDCTokenInvalidRenews(t *testing.T) {
	s := newOIDC(t)
	c := s.client(t)
	frozen := time.Now()
	o := &remote.OIDCOptions{Store: s.store, Now: func() time.Time { return frozen }} // the client never sees time pass
	s.store.Put(s.provider.URL, s.provider.PublicClientID, s.provider.IssueRefreshToken())
	if err := c.AuthenticateOIDC(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Hour) // the provider's tokens expired
	if _, err := c.ListJobs(t.Context(), 0); err != nil {
		t.Errorf("after TokenInvalid: %v", err)
	}
	if g := s.provider.Grants()["refresh_token"]; g != 2 {
		t.Errorf("%d refresh grants, want 2", g)
	}
}

func TestOIDCNoLoginAndSelection(t *testing.T) {
	s := newOIDC(t)
	err := s.client(t).AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Store: s.store})
	if !errors.Is(err, remote.ErrNoLogin) {
		t.Errorf("no stored token: err = %v, want ErrNoLogin", err)
	}
	err = s.client(t).AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Store: s.store, ProviderID: "egi"})
	if err == nil || !strings.Contains(err.Error(), `"egi"`) || !strings.Contains(err.Error(), "fake") {
		t.Errorf("unknown provider: err = %v", err)
	}
	// An unknown provider in the environment is ignored, as in the Python client.
	err = s.client(t).AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Store: s.store, Getenv: env("OPENEO_AUTH_PROVIDER_ID", "egi")})
	if !errors.Is(err, remote.ErrNoLogin) {
		t.Errorf("unknown provider in env: err = %v, want ErrNoLogin", err)
	}
	err = s.client(t).AuthenticateOIDC(t.Context(), &remote.OIDCOptions{Getenv: env("OPENEO_AUTH_METHOD", "password")})
	if err == nil || !strings.Contains(err.Error(), "client_credentials") {
		t.Errorf("unsupported method: err = %v", err)
	}
}

func TestTokenStoreRefusesOpenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "refresh-tokens.json")
	os.WriteFile(p, []byte(`{}`), 0o644)
	_, err := (&remote.TokenStore{Path: p}).Get("https://x", "c")
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("err = %v", err)
	}
	// Default location: the Python client's.
	st, err := remote.DefaultTokenStore(env("HOME", dir))
	if err != nil || st.Path != filepath.Join(dir, ".local/share/openeo-python-client/refresh-tokens.json") {
		t.Errorf("default store = %+v, %v", st, err)
	}
	home := t.TempDir() // no folder exists yet: the first candidate is made
	st, _ = remote.DefaultTokenStore(env("HOME", home, "OPENEO_CONFIG_HOME", filepath.Join(home, "cfg")))
	if st.Path != filepath.Join(home, "cfg/refresh-tokens.json") {
		t.Errorf("OPENEO_CONFIG_HOME store = %s", st.Path)
	}
}

// A client configured for the provider (the Python client's
// auth-config.json) is used instead of the provider's default client.
func TestOIDCConfiguredClient(t *testing.T) {
	s := newOIDC(t)
	var asked []string
	o := &remote.OIDCOptions{Store: s.store, Now: s.clock.Now,
		Prompt: func(dc remote.DeviceCode) { s.provider.Approve(dc.UserCode) },
		Clients: func(provider string) (string, string, error) {
			asked = append(asked, provider)
			return "configured-client", "", nil
		}}
	err := s.client(t).AuthenticateOIDCDevice(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "unknown client") {
		t.Errorf("with a client the provider does not know: err = %v", err)
	}
	if len(asked) != 1 || asked[0] != "fake" {
		t.Errorf("Clients asked for %v, want [fake]", asked)
	}
	o.Clients = func(string) (string, string, error) { return "", "", nil }
	if err := s.client(t).AuthenticateOIDCDevice(t.Context(), o); err != nil {
		t.Errorf("no configured client, the default one: %v", err)
	}
}

// A provider briefly unavailable (503 from its proxy): a token request
// that may be sent twice is retried; a refresh-token grant, which may have
// rotated the token before the proxy failed, is not sent again.
func TestOIDCTokenEndpointUnavailable(t *testing.T) {
	s := newOIDC(t)
	s.provider.FailTokenRequests(2)
	cc := &remote.OIDCOptions{Now: s.clock.Now, Getenv: env(
		"OPENEO_AUTH_METHOD", "client_credentials",
		"OPENEO_AUTH_CLIENT_ID", s.provider.ClientID, "OPENEO_AUTH_CLIENT_SECRET", s.provider.ClientSecret)}
	if err := s.client(t).AuthenticateOIDC(t.Context(), cc); err != nil {
		t.Fatalf("client credentials through two 503 answers: %v", err)
	}

	if err := s.store.Put(s.provider.URL, s.provider.PublicClientID, s.provider.IssueRefreshToken()); err != nil {
		t.Fatal(err)
	}
	s.provider.FailTokenRequests(1)
	o := &remote.OIDCOptions{Store: s.store, Now: s.clock.Now}
	if err := s.client(t).AuthenticateOIDC(t.Context(), o); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("refresh token through a 503: err = %v, want the 503 and no second try", err)
	}
	if err := s.client(t).AuthenticateOIDC(t.Context(), o); err != nil {
		t.Errorf("refresh token once the provider is back: %v", err)
	}
}
