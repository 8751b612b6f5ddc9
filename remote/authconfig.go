package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AuthConfig is the openEO Python client's auth-config.json, which its
// `openeo-auth add-basic` and `add-oidc` commands fill: per back-end URL
// (without trailing slash), basic credentials and OpenID Connect clients
// per provider. It is only read here. Like the Python client, a file that
// others may read is refused.
type AuthConfig struct {
	Path string
}

// DefaultAuthConfig returns the file where the Python client keeps it: in
// $OPENEO_CONFIG_HOME, else $XDG_CONFIG_HOME/openeo-python-client, else
// ~/.config/openeo-python-client; the first of these folders that exists.
// It returns nil when none does.
func DefaultAuthConfig(getenv func(string) string) *AuthConfig {
	for _, d := range pythonClientDirs(getenv, "XDG_CONFIG_HOME", ".config") {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return &AuthConfig{Path: filepath.Join(d, "auth-config.json")}
		}
	}
	return nil
}

// pythonClientDirs lists where the Python client looks for its files, in
// order: $OPENEO_CONFIG_HOME, $<xdgVar>/openeo-python-client, then
// ~/<homeDir>/openeo-python-client.
func pythonClientDirs(getenv func(string) string, xdgVar, homeDir string) []string {
	if getenv == nil {
		getenv = os.Getenv
	}
	var dirs []string
	if d := getenv("OPENEO_CONFIG_HOME"); d != "" {
		dirs = append(dirs, d)
	}
	if d := getenv(xdgVar); d != "" {
		dirs = append(dirs, filepath.Join(d, "openeo-python-client"))
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		dirs = append(dirs, filepath.Join(home, homeDir, "openeo-python-client"))
	}
	return dirs
}

type authConfigFile struct {
	Backends map[string]struct {
		Basic struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"basic"`
		OIDC struct {
			Providers map[string]struct {
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			} `json:"providers"`
		} `json:"oidc"`
	} `json:"backends"`
}

// load reads the file; a missing file (or a nil a) is an empty one.
func (a *AuthConfig) load() (*authConfigFile, error) {
	var f authConfigFile
	if a == nil {
		return &f, nil
	}
	st, err := os.Stat(a.Path)
	if errors.Is(err, os.ErrNotExist) {
		return &f, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s could be read by others (mode %o): make it private with chmod 600", a.Path, st.Mode().Perm())
	}
	b, err := os.ReadFile(a.Path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", a.Path, err)
	}
	return &f, nil
}

// Basic returns the user name and password stored for the back-end at
// url; empty when there are none.
func (a *AuthConfig) Basic(url string) (user, password string, err error) {
	f, err := a.load()
	if err != nil {
		return "", "", err
	}
	b := f.Backends[normalizeURL(url)]
	if b.Basic.Username == "" {
		return "", "", nil
	}
	return b.Basic.Username, b.Basic.Password, nil
}

// OIDCClient returns the client stored for a provider of the back-end at
// url; empty when there is none.
func (a *AuthConfig) OIDCClient(url, providerID string) (id, secret string, err error) {
	f, err := a.load()
	if err != nil {
		return "", "", err
	}
	p := f.Backends[normalizeURL(url)].OIDC.Providers[providerID]
	if p.ClientID == "" {
		return "", "", nil
	}
	return p.ClientID, p.ClientSecret, nil
}

// normalizeURL is the Python client's key for a back-end or an issuer.
func normalizeURL(u string) string {
	if t := strings.TrimRight(u, "/"); t != "" {
		return t
	}
	return "/"
}
