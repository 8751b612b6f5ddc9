package remote_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// A remote definition is fetched with retries and never gets credentials,
// even from a client process that holds a token.
func TestFetchDefinitionRetriesWithoutCredentials(t *testing.T) {
	docs := remotetest.NewDocServer(map[string][]byte{"/p/ndvi.json": []byte(`{"id": "ndvi"}`)})
	defer docs.Close()
	docs.FailNext(http.StatusServiceUnavailable, http.StatusBadGateway)
	opts := &remote.Options{Policy: &remote.Policy{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	doc, err := remote.FetchDefinition(t.Context(), docs.URL+"/p/ndvi.json", opts)
	if err != nil || string(doc) != `{"id": "ndvi"}` {
		t.Fatalf("FetchDefinition = %s, %v", doc, err)
	}
	reqs := docs.Requests()
	if len(reqs) != 3 {
		t.Errorf("requests = %d, want 3 (two failures retried)", len(reqs))
	}
	for _, r := range reqs {
		if r.Authorization != "" {
			t.Errorf("the definition host got Authorization %q", r.Authorization)
		}
	}

	_, err = remote.FetchDefinition(t.Context(), docs.URL+"/p/missing.json", opts)
	var apiErr *remote.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("missing document: err = %v", err)
	}
	if n := len(docs.Requests()); n != 4 {
		t.Errorf("a 404 was retried: %d requests, want 4", n)
	}
	if _, err := remote.FetchDefinition(t.Context(), "ftp://x/y", opts); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

// The fake back-end stores UDPs sent with PUT, serves them, and keeps each
// job's process as sent: number literals such as 1.0 survive.
func TestFakeKeepsUDPsAndJobProcess(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c := connect(t, srv)
	req, _ := http.NewRequest(http.MethodPut, srv.APIURL+"/process_graphs/ndvi",
		strings.NewReader(`{"parameters": [], "process_graph": {"a": {"process_id": "add", "arguments": {"x": 1.0, "y": 2}, "result": true}}}`))
	req.Header.Set("Authorization", "Bearer "+srv.ValidToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	raw, err := c.ProcessGraph(t.Context(), "ndvi")
	if err != nil || !strings.Contains(string(raw), `"x":1.0`) || !strings.Contains(string(raw), `"id":"ndvi"`) {
		t.Errorf("stored UDP = %s, %v", raw, err)
	}
	id, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: remote.Process{ProcessGraph: map[string]any{
		"n": map[string]any{"process_id": "ndvi", "arguments": map[string]any{"o": json.Number("1.0")}, "result": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	if jobs := srv.Jobs(); len(jobs) != 1 || !strings.Contains(string(jobs[0].Body), `"o":1.0`) {
		t.Errorf("kept body = %s", jobs[0].Body)
	}
	j, err := c.GetJob(t.Context(), id)
	if err != nil || !strings.Contains(string(j.Process), `"o":1.0`) {
		t.Errorf("served process = %s, %v", j.Process, err)
	}
}
