package udpjob_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/udpjob"
	"github.com/openeo-batch/worker/worker"
)

const areaUDP = `{"id": "area_stats", "parameters": [
  {"name": "geometry", "description": "area", "schema": {"type": "object", "subtype": "geojson"}},
  {"name": "year", "description": "year", "schema": {"type": "integer"}},
  {"name": "offset", "description": "offset", "schema": {"type": "number"}, "optional": true}],
 "process_graph": {"a": {"process_id": "aggregate_spatial", "arguments": {"geometries": {"from_parameter": "geometry"}}, "result": true}}}`

// The Go counterpart of the Python client's ProcessBasedJobCreator, as the
// manager's StartJob: one job per row from a UDP stored on the back-end.
func ExampleJobCreator() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "jobs.db"))
	defer store.Close()
	store.Init(ctx, []string{"site", "year", "geometry"}, drivertest.Rows([][]any{
		{"mol", int64(2021), "POLYGON ((5 51.2, 5.1 51.2, 5.1 51.3, 5 51.2))"},
		{"gent", int64(2022), "POINT (3.7 51.05)"},
	}))
	backend := remotetest.NewServer(remotetest.Options{})
	defer backend.Close()
	backend.AddProcess("area_stats", json.RawMessage(areaUDP))
	conn, _ := remote.Connect(ctx, backend.URL, nil)
	conn.AuthenticateBasic(ctx, "user", "password")

	creator := &udpjob.JobCreator{
		ProcessID:         "area_stats",                  // stored on the back-end: read once per back-end
		ParameterDefaults: map[string]any{"offset": 0.5}, // for rows without a value
		// The geometry column feeds the GeoJSON parameter by itself.
	}
	m, err := worker.New(worker.Config{
		Store:        store,
		Backends:     []worker.Backend{{Name: "fake", Client: conn}},
		StartJob:     creator.StartJob,
		RootDir:      filepath.Join(dir, "results"),
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Run(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, j := range backend.Jobs() {
		var body struct {
			Process struct {
				ProcessGraph map[string]json.RawMessage `json:"process_graph"`
			} `json:"process"`
		}
		json.Unmarshal(j.Body, &body)
		fmt.Println(string(body.Process.ProcessGraph["areastats1"]))
	}
	// The two jobs are created concurrently, so their order on the back-end varies.

	// Unordered output:
	// {"arguments":{"geometry":{"coordinates":[[[5.0,51.2],[5.1,51.2],[5.1,51.3],[5.0,51.2]]],"type":"Polygon"},"offset":0.5,"year":2021},"process_id":"area_stats","result":true}
	// {"arguments":{"geometry":{"coordinates":[3.7,51.05],"type":"Point"},"offset":0.5,"year":2022},"process_id":"area_stats","result":true}
}

// A row that cannot be made into a job fails at once, without a request
// and without counting against the back-end: three bad rows in a row do
// not pause it, and the good rows finish.
func TestRowErrorNeverBlamesTheBackend(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.Init(ctx, []string{"year", "geometry"}, drivertest.Rows([][]any{
		{"abc", "POINT (1 2)"}, {"def", "POINT (1 2)"}, {"ghi", "POINT (1 2)"},
		{int64(2020), "POINT (1 2)"}, {int64(2021), "POINT (1 2)"},
	}))
	backend := remotetest.NewServer(remotetest.Options{})
	defer backend.Close()
	backend.AddProcess("area_stats", json.RawMessage(areaUDP))
	conn, _ := remote.Connect(ctx, backend.URL, nil)
	conn.AuthenticateBasic(ctx, "user", "password")
	var logs bytes.Buffer
	creator := &udpjob.JobCreator{ProcessID: "area_stats"}
	m, err := worker.New(worker.Config{
		Store: store, Backends: []worker.Backend{{Name: "fake", Client: conn, ParallelJobs: 1}},
		StartJob: creator.StartJob, DisableDownloads: true, PollInterval: 5 * time.Millisecond,
		// Short pauses, so that a run that wrongly pauses the back-end ends soon
		// and fails on the log below rather than by a timeout.
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _ := store.Select(ctx, driver.Filter{})
	for _, r := range rows {
		bad := r.Key <= 3
		switch {
		case bad && (r.Status != driver.StartFailed || !strings.Contains(r.LastError, `column "year"`) || r.Attempts != 3):
			t.Errorf("bad row %d: %s attempts %d %q", r.Key, r.Status, r.Attempts, r.LastError)
		case !bad && r.Status != driver.Finished:
			t.Errorf("good row %d: %s %q", r.Key, r.Status, r.LastError)
		}
	}
	if n := backend.Requests()["POST /jobs"]; n != 2 {
		t.Errorf("POST /jobs = %d, want 2 (only the good rows)", n)
	}
	if strings.Contains(logs.String(), "waiting before the next") {
		t.Errorf("the back-end was paused for rows' faults:\n%s", logs.String())
	}
}
