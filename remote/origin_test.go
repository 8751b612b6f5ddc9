package remote

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Any request of the client to another origin (a process definition on
// another host, say) goes without the token, and so does a redirect from
// the back-end to another origin; a redirect within the back-end's origin
// keeps it.
func TestTokenOnlyToItsOrigin(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path -> Authorization
	record := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"id": "x"})
	}
	other := httptest.NewServer(http.HandlerFunc(record))
	defer other.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/redirected", http.StatusFound)
	})
	mux.HandleFunc("/api/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/here", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/api/here", record)
	backend := httptest.NewServer(mux)
	defer backend.Close()

	c, err := New(backend.URL+"/api", &Options{Policy: &Policy{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("basic//secret")
	var out map[string]string
	for _, u := range []string{other.URL + "/definition.json", backend.URL + "/api/away", backend.URL + "/api/moved"} {
		if err := c.getJSON(t.Context(), u, &out); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for path, want := range map[string]string{"/definition.json": "", "/redirected": "", "/api/here": "Bearer basic//secret"} {
		if got, ok := seen[path]; !ok || got != want {
			t.Errorf("%s got Authorization %q (reached %v), want %q", path, got, ok, want)
		}
	}
}
