package remote_test

import (
	"context"
	"errors"
	"github.com/openeo-batch/worker/remote/remotetest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/remote"
)

// hangingClient is an HTTP client whose every connection goes to a peer
// that accepts it, reads what is sent and never answers. The peer is an
// in-memory connection made in the test's bubble: a goroutine blocked on
// a loopback socket that never answers would stop virtual time.
func hangingClient() *http.Client {
	dial := func(context.Context, string, string) (net.Conn, error) {
		cli, srv := net.Pipe()
		go func() {
			io.Copy(io.Discard, srv)
			srv.Close()
		}()
		return cli, nil
	}
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
}

// TestDefinitionFetchBounded: a definition server (or back-end) that never
// answers fails FetchDefinition and ProcessGraph after at most
// DefinitionRetries+1 attempts of DefinitionTimeout each (plus backoff),
// with an error naming the URL and saying the network failed.
func TestDefinitionFetchBounded(t *testing.T) {
	bound := time.Duration(remote.DefinitionRetries+1)*remote.DefinitionTimeout + 10*time.Second
	synctest.Test(t, func(t *testing.T) {
		const u = "http://127.0.0.1:9/p/ndvi.json"
		start := time.Now()
		_, err := remote.FetchDefinition(t.Context(), u, &remote.Options{HTTPClient: hangingClient()})
		if took := time.Since(start); took > bound || took < remote.DefinitionTimeout {
			t.Errorf("FetchDefinition gave up after %v, want at most %v", took, bound)
		}
		if err == nil || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "network failure after 3 attempts") {
			t.Errorf("FetchDefinition: %v, want the URL and a network failure", err)
		}

		c, err := remote.New("http://127.0.0.1:9/openeo/", &remote.Options{HTTPClient: hangingClient()})
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken("t")
		start = time.Now()
		_, err = c.ProcessGraph(t.Context(), "ndvi")
		if took := time.Since(start); took > bound || took < remote.DefinitionTimeout {
			t.Errorf("ProcessGraph gave up after %v, want at most %v", took, bound)
		}
		if err == nil || !strings.Contains(err.Error(), "/process_graphs/ndvi") || !remote.ConnectionFailed(err) ||
			!strings.Contains(err.Error(), "network failure") {
			t.Errorf("ProcessGraph: %v, want the URL and a network failure", err)
		}
	})
}

// TestConnectNotOpenEO: a server that is no openEO API (a web page, a
// JSON document without api_version) fails Connect with ErrNotOpenEO and
// a one-line message; an openEO API root without discovery connects.
func TestConnectNotOpenEO(t *testing.T) {
	pages := map[string]http.HandlerFunc{
		"html": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!DOCTYPE HTML>\n<html>\n<body>\n<ul><li>a</li>\n<li>b</li></ul>\n</body></html>\n")
		},
		"json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"hello":"world"}`)
		},
		"html404": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<html>\n<h1>Not Found</h1>\n</html>")
		},
	}
	for name, page := range pages {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(page)
			defer srv.Close()
			_, err := remote.Connect(t.Context(), srv.URL, nil)
			if !errors.Is(err, remote.ErrNotOpenEO) || strings.Contains(err.Error(), "\n") ||
				!strings.Contains(err.Error(), "is this an openEO back-end?") {
				t.Errorf("Connect: %v, want ErrNotOpenEO on one line", err)
			}
		})
	}
	api := remotetest.NewServer(remotetest.Options{})
	defer api.Close()
	if _, err := remote.Connect(t.Context(), api.APIURL, nil); err != nil {
		t.Errorf("Connect to an API root without discovery: %v", err)
	}
}
