package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const authConfigDoc = `{
  "metadata": {"type": "AuthConfig", "version": 1},
  "general": {},
  "backends": {
    "https://openeo.example/openeo/1.2": {
      "basic": {"date": "2026-01-01T00:00:00Z", "username": "john", "password": "j0hn123"},
      "oidc": {"providers": {"egi": {"date": "2026-01-01T00:00:00Z", "client_id": "my-client", "client_secret": "s3cret"}}}
    },
    "https://other.example": {"basic": {"username": "", "password": "ignored"}}
  }
}`

func writeAuthConfig(t *testing.T, mode os.FileMode) *AuthConfig {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "auth-config.json")
	if err := os.WriteFile(path, []byte(authConfigDoc), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
	a := DefaultAuthConfig(func(k string) string {
		if k == "OPENEO_CONFIG_HOME" {
			return dir
		}
		return ""
	})
	if a == nil || a.Path != path {
		t.Fatalf("DefaultAuthConfig = %+v, want %s", a, path)
	}
	return a
}

func TestAuthConfig(t *testing.T) {
	a := writeAuthConfig(t, 0o600)
	for _, url := range []string{"https://openeo.example/openeo/1.2", "https://openeo.example/openeo/1.2/"} {
		if u, p, err := a.Basic(url); err != nil || u != "john" || p != "j0hn123" {
			t.Errorf("Basic(%s) = %q %q %v", url, u, p, err)
		}
	}
	if u, p, err := a.Basic("https://other.example"); err != nil || u != "" || p != "" {
		t.Errorf("no user name: got %q %q %v, want nothing", u, p, err)
	}
	if u, _, err := a.Basic("https://unknown.example"); err != nil || u != "" {
		t.Errorf("unknown back-end: %q %v", u, err)
	}
	if id, secret, err := a.OIDCClient("https://openeo.example/openeo/1.2/", "egi"); err != nil || id != "my-client" || secret != "s3cret" {
		t.Errorf("OIDCClient = %q %q %v", id, secret, err)
	}
	if id, _, err := a.OIDCClient("https://openeo.example/openeo/1.2", "google"); err != nil || id != "" {
		t.Errorf("unknown provider: %q %v", id, err)
	}
	var none *AuthConfig
	if u, _, err := none.Basic("https://openeo.example/openeo/1.2"); err != nil || u != "" {
		t.Errorf("no config folder: %q %v", u, err)
	}
}

// Like the Python client, a file others may read is refused, and the
// error says how to fix it without showing what is in it.
func TestAuthConfigReadableByOthers(t *testing.T) {
	a := writeAuthConfig(t, 0o644)
	_, _, err := a.Basic("https://openeo.example/openeo/1.2")
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "j0hn123") {
		t.Errorf("err = %v", err)
	}
}
