package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/openeo-batch/worker/internal/atomicfile"
)

// TokenStore keeps OIDC refresh tokens in the openEO Python client's
// refresh-tokens.json: keyed by issuer (without trailing slash), then client
// id, each {"date": ..., "refresh_token": ...}. The file has mode 0600; a
// file others may read is refused, as the Python client does.
type TokenStore struct {
	Path string
	mu   sync.Mutex
}

// DefaultTokenStore returns the store where the Python client keeps it:
// in $OPENEO_CONFIG_HOME, else $XDG_DATA_HOME/openeo-python-client, else
// ~/.local/share/openeo-python-client; the first folder that exists wins,
// else the first that can be made.
func DefaultTokenStore(getenv func(string) string) (*TokenStore, error) {
	dirs := pythonClientDirs(getenv, "XDG_DATA_HOME", filepath.Join(".local", "share"))
	if len(dirs) == 0 {
		return nil, errors.New("no folder for refresh tokens: set OPENEO_CONFIG_HOME or HOME")
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return &TokenStore{Path: filepath.Join(d, "refresh-tokens.json")}, nil
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err == nil {
			return &TokenStore{Path: filepath.Join(d, "refresh-tokens.json")}, nil
		} else {
			errs = append(errs, err)
		}
	}
	return nil, fmt.Errorf("no folder for refresh tokens: %w", errors.Join(errs...))
}

type storedToken struct {
	Date         string `json:"date"`
	RefreshToken string `json:"refresh_token"`
}

func (s *TokenStore) load() (map[string]map[string]storedToken, error) {
	data := map[string]map[string]storedToken{}
	st, err := os.Stat(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return data, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: others may read it (mode %#o): run chmod 600 %s", s.Path, st.Mode().Perm(), s.Path)
	}
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	return data, nil
}

// Get returns the refresh token for issuer and client, or "".
func (s *TokenStore) Get(issuer, clientID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := s.load()
	if err != nil {
		return "", err
	}
	return data[normalizeURL(issuer)][clientID].RefreshToken, nil
}

// Put stores a refresh token, keeping the other entries, atomically and
// with mode 0600.
func (s *TokenStore) Put(issuer, clientID, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := s.load()
	if err != nil {
		return err
	}
	issuer = normalizeURL(issuer)
	if data[issuer] == nil {
		data[issuer] = map[string]storedToken{}
	}
	data[issuer][clientID] = storedToken{Date: time.Now().UTC().Format(time.RFC3339), RefreshToken: token}
	b, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.Path, b, 0o600)
}
