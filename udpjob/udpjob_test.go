package udpjob_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/udpjob"
)

func load(t *testing.T) *udpjob.Definition {
	t.Helper()
	d, err := udpjob.Load(filepath.Join("testdata", "evi.json"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJobFillsParametersFromColumnsThenDefaults(t *testing.T) {
	d := load(t)
	job, err := d.Job(driver.Job{Key: 4, Data: map[string]any{
		"year": int64(2021), "title": "evi 2021", "cloud_cover": 0.2,
		"spatial_extent": `{"west": 1, "south": 2, "east": 3, "north": 4}`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Title != "evi 2021" || !strings.Contains(job.Description, "vegetation") {
		t.Errorf("title %q description %q", job.Title, job.Description)
	}
	g := marshal(t, job.Process.ProcessGraph)
	for _, want := range []string{
		`"temporal_extent":[2021,null]`,
		`"spatial_extent":{"east":3,"north":4,"south":2,"west":1}`,
		`"y":0.2`,
		`"scale":null`,
		// A callback's own parameter is not a definition parameter: kept.
		`"data":{"from_parameter":"data"}`, `"x":{"from_parameter":"value"}`,
	} {
		if !strings.Contains(g, want) {
			t.Errorf("graph lacks %s:\n%s", want, g)
		}
	}
	// Defaults when the row has no value.
	job, err = d.Job(driver.Job{Key: 9, Data: map[string]any{"year": int64(2020), "spatial_extent": nil}})
	if err != nil {
		t.Fatal(err)
	}
	g = marshal(t, job.Process.ProcessGraph)
	if !strings.Contains(g, `"spatial_extent":{"east":5.1,"north":51.1,"south":51.0,"west":5.0}`) || !strings.Contains(g, `"y":0.5`) {
		t.Errorf("defaults not used:\n%s", g)
	}
	if job.Title != "evi row 9" {
		t.Errorf("title = %q", job.Title)
	}
	// The definition itself is not changed.
	if !strings.Contains(marshal(t, d.ProcessGraph), `{"from_parameter":"year"}`) {
		t.Error("Job modified the definition's graph")
	}
}

func TestMissingRequiredParameter(t *testing.T) {
	d := load(t)
	_, err := d.Job(driver.Job{Key: 3, Data: map[string]any{"tile": "x"}})
	if err == nil || !strings.Contains(err.Error(), `"year"`) || !strings.Contains(err.Error(), "row 3") {
		t.Errorf("err = %v, want it to name the parameter and row", err)
	}
	if err := d.CheckColumns([]string{"tile"}); err == nil || !strings.Contains(err.Error(), `"year"`) {
		t.Errorf("CheckColumns err = %v", err)
	}
	if err := d.CheckColumns([]string{"year"}); err != nil {
		t.Errorf("CheckColumns with year: %v", err)
	}
}

func TestBadStructuredCell(t *testing.T) {
	d := load(t)
	_, err := d.Job(driver.Job{Key: 1, Data: map[string]any{"year": int64(1), "spatial_extent": "{'west': 5.0}"}})
	if err == nil || !strings.Contains(err.Error(), "spatial_extent") {
		t.Errorf("err = %v, want it to name the column", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"not json", `{`, "not a JSON"},
		{"no graph", `{"id": "x"}`, "process_graph: missing"},
		{"node not object", `{"process_graph": {"a": 1}}`, "process_graph.a"},
		{"no process id", `{"process_graph": {"a": {"arguments": {}, "result": true}}}`, "process_id"},
		{"no arguments", `{"process_graph": {"a": {"process_id": "add", "result": true}}}`, "arguments"},
		{"two results", `{"process_graph": {"a": {"process_id": "add", "arguments": {}, "result": true}, "b": {"process_id": "add", "arguments": {}, "result": true}}}`, "2 nodes"},
		{"bad child", `{"process_graph": {"a": {"process_id": "apply", "arguments": {"p": {"process_graph": {}}}, "result": true}}}`, "a.arguments.p.process_graph"},
		{"bad param name", `{"parameters": [{"name": "a b"}], "process_graph": {"a": {"process_id": "add", "arguments": {}, "result": true}}}`, "parameters[0].name"},
		{"duplicate param", `{"parameters": [{"name": "a"}, {"name": "a"}], "process_graph": {"a": {"process_id": "add", "arguments": {}, "result": true}}}`, "twice"},
		{"trailing data", `{"process_graph": {"a": {"process_id": "add", "arguments": {}, "result": true}}} {}`, "after the document"},
		{"array", ` [1, 2]`, "not a process definition: want a JSON object with process_graph"},
		{"id a number", `{"id": 7, "process_graph": {}}`, "id: want a JSON string, got a JSON number"},
		{"parameter a string", `{"parameters": ["a"], "process_graph": {}}`, "parameters[0]: want a JSON object, got a JSON string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := udpjob.Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	_, err := udpjob.Load("testdata/missing.json")
	var de *udpjob.DefinitionError
	if !errors.As(err, &de) || err.Error() != "testdata/missing.json: no such file or directory" {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// FuzzParse: any input either fails to parse or gives a definition whose
// jobs marshal to JSON that parses back as a definition with the same graph.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"a","parameters":[{"name":"x","schema":{},"default":1}],"process_graph":{"n":{"process_id":"add","arguments":{"x":{"from_parameter":"x"},"y":2},"result":true}}}`))
	f.Add([]byte(`{"process_graph":{"n":{"process_id":"apply","arguments":{"p":{"process_graph":{"m":{"process_id":"abs","arguments":{"x":{"from_parameter":"x"}},"result":true}}}},"result":true}}}`))
	f.Add([]byte(`{"parameters":[{"name":"bbox","schema":{"type":"object"},"optional":true}],"process_graph":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := udpjob.Parse(data)
		if err != nil {
			return
		}
		job, err := d.Job(driver.Job{Key: 1, Data: map[string]any{}})
		if err != nil {
			return // a required parameter without default
		}
		doc, err := json.Marshal(map[string]any{"process_graph": job.Process.ProcessGraph})
		if err != nil {
			t.Fatalf("marshal job graph: %v", err)
		}
		again, err := udpjob.Parse(doc)
		if err != nil {
			t.Fatalf("job graph does not parse back: %v\n%s", err, doc)
		}
		if marshal(t, again.ProcessGraph) != marshal(t, job.Process.ProcessGraph) {
			t.Fatalf("round trip changed the graph")
		}
	})
}

// A text cell that is not UTF-8 (Latin-1 kept by a SQLite or CSV table)
// is the row's error naming the column, never sent as U+FFFD.
func TestCellNotUTF8(t *testing.T) {
	d := load(t)
	for _, c := range []struct {
		data map[string]any
		col  string
	}{
		{map[string]any{"year": int64(2020), "title": "caf\xe9-l1"}, "title"},
		{map[string]any{"year": int64(2020), "spatial_extent": "{\"west\": \"\xe9\"}"}, "spatial_extent"},
	} {
		_, err := d.Job(driver.Job{Key: 7, Data: c.data})
		var re *udpjob.RowError
		if !errors.As(err, &re) || re.Column != c.col || !strings.Contains(err.Error(), "not UTF-8") {
			t.Errorf("%v: err = %v, want a row error naming column %q", c.data, err, c.col)
		}
	}
	c := &udpjob.JobCreator{Definition: d}
	bad, err := c.Check([]*udpjob.Definition{d}, []string{"year", "description"},
		[]driver.Job{{Key: 1, Data: map[string]any{"year": int64(1)}}, {Key: 2, Data: map[string]any{"year": int64(1), "description": "\xff"}}})
	if err != nil || len(bad) != 1 || bad[0].Key != 2 || bad[0].Column != "description" {
		t.Errorf("Check: %v, %v", bad, err)
	}
}
