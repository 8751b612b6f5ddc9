package remote_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/openeo-batch/worker/remote"
)

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

// TestJobFieldByField: a field of an unexpected type is absent and named in
// Odd; it never costs the rest of the document (issue 10).
func TestJobFieldByField(t *testing.T) {
	cpu := map[string]remote.Metric{"cpu": {Value: 12, Unit: "cpu-seconds"}}
	for name, tc := range map[string]struct {
		doc  string
		want remote.Job
	}{
		"costs as a string": {
			`{"id":"j1","status":"finished","costs":"1.5","usage":{"cpu":{"value":12,"unit":"cpu-seconds"}}}`,
			remote.Job{ID: "j1", Status: "finished", Usage: cpu, Odd: []string{"costs"}},
		},
		"usage as a list": {
			`{"id":"j1","status":"finished","costs":2,"usage":[]}`,
			remote.Job{ID: "j1", Status: "finished", Costs: f64(2), Odd: []string{"usage"}},
		},
		"a usage value as a string": {
			`{"id":"j1","status":"finished","usage":{"cpu":{"value":12,"unit":"cpu-seconds"},"memory":{"value":"5","unit":"mb-seconds"}}}`,
			remote.Job{ID: "j1", Status: "finished", Usage: cpu, Odd: []string{"usage.memory.value"}},
		},
		"a null usage value is absent, not 0": {
			`{"id":"j1","status":"finished","usage":{"cpu":{"value":12,"unit":"cpu-seconds"},"duration":{"value":null,"unit":"seconds"}}}`,
			remote.Job{ID: "j1", Status: "finished", Usage: cpu, Odd: []string{"usage.duration.value"}},
		},
		"a usage entry that is not an object": {
			`{"id":"j1","status":"finished","usage":{"cpu":{"value":12,"unit":"cpu-seconds"},"sentinelhub":3}}`,
			remote.Job{ID: "j1", Status: "finished", Usage: cpu, Odd: []string{"usage.sentinelhub"}},
		},
		"nulls are absent and not odd": {
			`{"id":"j1","status":"queued","costs":null,"usage":null,"title":null,"progress":null}`,
			remote.Job{ID: "j1", Status: "queued"},
		},
		"odd title and progress": {
			`{"id":"j1","status":"running","title":7,"progress":"50%","created":"2024-01-01T00:00:00Z"}`,
			remote.Job{ID: "j1", Status: "running", Created: "2024-01-01T00:00:00Z", Odd: []string{"title", "progress"}},
		},
		"not an object": {`[1,2]`, remote.Job{Odd: []string{"(not an object)"}}},
	} {
		t.Run(name, func(t *testing.T) {
			var got remote.Job
			if err := json.Unmarshal([]byte(tc.doc), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	var j remote.Job
	if err := json.Unmarshal([]byte(`{"id":`), &j); err == nil {
		t.Error("broken JSON decoded without error")
	}
}

// TestListingKeepsGoodJobs: one odd entry of a listing never costs the
// others.
func TestListingKeepsGoodJobs(t *testing.T) {
	var jobs []remote.Job
	if err := json.Unmarshal([]byte(`[{"id":"a","status":"queued"},"junk",{"id":"b","status":7}]`), &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 || jobs[0].ID != "a" || jobs[0].Status != "queued" || jobs[2].ID != "b" || jobs[2].Status != "" {
		t.Errorf("jobs = %+v", jobs)
	}
}

// TestResultsAssetByAsset: an asset that cannot be read is left out and
// named; the others, and the rest of the document, are kept.
func TestResultsAssetByAsset(t *testing.T) {
	doc := `{"type":"Feature","id":"j1","assets":{
		"data/b03.tif":{"href":"https://x/b03.tif","file:size":10,"roles":["data"]},
		"b04.tif":{"href":"https://x/b04.tif","file:size":"ten","file:checksum":12},
		"broken":"https://x/broken"},
		"links":[]}`
	var got remote.Results
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := remote.Results{Type: "Feature", ID: "j1", Links: []remote.Link{},
		Assets: map[string]remote.Asset{
			"data/b03.tif": {Href: "https://x/b03.tif", FileSize: i64(10), Roles: []string{"data"}},
			"b04.tif":      {Href: "https://x/b04.tif"},
		},
		Odd: []string{"assets.b04.tif.file:size", "assets.b04.tif.file:checksum", "assets.broken"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
