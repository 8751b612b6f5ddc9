package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// fixtures holds what the openEO Python client 0.52 sends to POST /jobs for
// given job tables (see its README).
const fixtures = "../../../shared/fixtures/process-based"

func fixtureDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("fixtures not found at %s", dir)
	}
	return dir
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// sameJSON compares two JSON values as the fixtures' README asks: same
// types (an integer literal where Python wrote one, a decimal where it
// wrote a float), same values; the spelling of a decimal may differ.
func sameJSON(got, want any, path string) []string {
	switch w := want.(type) {
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return []string{fmt.Sprintf("%s: got %#v, want number %s", path, got, w)}
		}
		gi, wi := !strings.ContainsAny(string(g), ".eE"), !strings.ContainsAny(string(w), ".eE")
		gf, _ := g.Float64()
		wf, _ := w.Float64()
		if gi != wi || gf != wf {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, g, w)}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %#v, want an object", path, got)}
		}
		var diffs []string
		for k := range w {
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: not expected (%v)", path, k, g[k]))
				continue
			}
			diffs = append(diffs, sameJSON(g[k], w[k], path+"."+k)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %#v, want %d items", path, got, len(w))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, sameJSON(g[i], w[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return diffs
	default:
		if !reflect.DeepEqual(got, want) {
			return []string{fmt.Sprintf("%s: got %#v, want %#v", path, got, want)}
		}
	}
	return nil
}

// singleNode returns the one node of a job body's process graph.
func singleNode(t *testing.T, body any) map[string]any {
	t.Helper()
	g := body.(map[string]any)["process"].(map[string]any)["process_graph"].(map[string]any)
	if len(g) != 1 {
		t.Fatalf("process graph has %d nodes, want 1", len(g))
	}
	for _, n := range g {
		return n.(map[string]any)
	}
	return nil
}

// pyTextToJSON reads the Python-repr text of a dict or list cell in the
// fixtures (simple values only) as JSON.
func pyTextToJSON(t *testing.T, s string) any {
	return decodeNumbers(t, []byte(strings.NewReplacer("'", `"`, "None", "null").Replace(s)))
}

// goldenCase runs one fixture case through the CLI against the fake
// back-end and compares each POST /jobs body with the Python client's.
func goldenCase(t *testing.T, name string, flags func(docsURL string) []string, namespaceURL func(docsURL string) string) {
	src := filepath.Join(fixtureDir(t), name)
	dir := t.TempDir()
	table, err := os.ReadFile(filepath.Join(src, "jobs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// The job table exactly as the Python client's create_job_db wrote it.
	os.WriteFile(filepath.Join(dir, "jobs.csv"), table, 0o644)
	def, _ := os.ReadFile(filepath.Join(src, "definition.json"))

	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	var opts struct {
		ProcessID string `json:"process_id"`
	}
	ob, _ := os.ReadFile(filepath.Join(src, "options.json"))
	json.Unmarshal(ob, &opts)
	srv.AddProcess(opts.ProcessID, def)
	docs := remotetest.NewDocServer(map[string][]byte{"/processes/" + opts.ProcessID + ".json": def})
	defer docs.Close()
	t.Setenv("OPENEO_B0_TOKEN", srv.ValidToken())

	args := append([]string{"run", "--db", "jobs.csv", "--backend", "b0=" + srv.URL + ",parallel=4",
		"--poll", "20ms", "--no-download", "--log-format", "json"}, flags(docs.URL)...)
	code, out := cli(t, dir, args...)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	for _, r := range docs.Requests() {
		if r.Authorization != "" {
			t.Errorf("the definition host got Authorization %q", r.Authorization)
		}
	}
	if n := len(docs.Requests()); namespaceURL != nil && n != 1 {
		t.Errorf("remote definition fetched %d times in one run, want 1", n)
	}
	if n := srv.Requests()["GET /process_graphs/{process_graph_id}"]; namespaceURL == nil && n != 1 {
		t.Errorf("stored UDP fetched %d times in one run, want 1", n)
	}

	store, err := driver.Open(t.Context(), filepath.Join(dir, "jobs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := store.Select(t.Context(), driver.Filter{})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	for _, j := range srv.Jobs() {
		bodies[j.ID] = j.Body
	}
	slices.SortFunc(rows, func(a, b driver.Job) int { return int(a.Key - b.Key) })
	ns := ""
	if namespaceURL != nil {
		ns = namespaceURL(docs.URL)
	}
	for i, row := range rows {
		t.Run(fmt.Sprintf("row-%d", i), func(t *testing.T) {
			if row.Status != driver.Finished || bodies[row.ID] == nil {
				t.Fatalf("row %d: status %s, job %q, last_error %q", i, row.Status, row.ID, row.LastError)
			}
			got := decodeNumbers(t, bodies[row.ID])
			gotNode := singleNode(t, got)
			wantRaw, err := os.ReadFile(filepath.Join(src, "expected", fmt.Sprintf("row-%d.raw.json", i)))
			if err != nil {
				// The Python client sent nothing for this row: an empty cell
				// (NaN) made its request body unencodable and ended its whole
				// run. We send the useful job instead: see checkUnsent.
				checkUnsent(t, name, i, got, gotNode)
				return
			}
			wantRaw = []byte(strings.ReplaceAll(string(wantRaw), "{{NAMESPACE_URL}}", ns))
			want := decodeNumbers(t, wantRaw)
			wantNode := singleNode(t, want)
			for _, k := range []string{"process_id", "namespace", "result"} {
				if !reflect.DeepEqual(gotNode[k], wantNode[k]) {
					t.Errorf("%s = %#v, want %#v", k, gotNode[k], wantNode[k])
				}
			}
			gotArgs, wantArgs := gotNode["arguments"].(map[string]any), wantNode["arguments"].(map[string]any)
			for k, w := range wantArgs {
				// Python sends a dict or list cell as the text pandas wrote
				// (its repr), which a back-end refuses for an object or array
				// parameter; we send the object or array itself.
				if s, ok := w.(string); ok && (strings.HasPrefix(s, "{'") || strings.HasPrefix(s, "['")) {
					wantArgs[k] = pyTextToJSON(t, s)
				}
			}
			for _, d := range sameJSON(gotArgs, wantArgs, "arguments") {
				t.Error(d)
			}
			wb, gb := want.(map[string]any), got.(map[string]any)
			// Our description carries the manager's crash-recovery tag at its
			// end; the rest must be the same where it comes from a column.
			gotDesc := gb["description"].(string)
			if i := strings.LastIndex(gotDesc, "\n\n[openeo-batch-worker:"); i >= 0 {
				gotDesc = gotDesc[:i]
			}
			if remote.JobTag(gb["description"].(string)) == "" {
				t.Errorf("description lacks the job tag: %q", gb["description"])
			}
			for _, f := range []struct{ col, got string }{{"title", gb["title"].(string)}, {"description", gotDesc}} {
				if cell, ok := row.Data[f.col]; ok && cell != nil {
					if f.got != wb[f.col] {
						t.Errorf("%s (from the column) = %q, want %q", f.col, f.got, wb[f.col])
					}
				} else if want := fmt.Sprintf("Process '%s' ", gotNode["process_id"]); !strings.HasPrefix(f.got, want) {
					t.Errorf("default %s = %q, want it to start with %q", f.col, f.got, want)
				}
			}
			// Where no Python repr of a geometry or dict is involved, our
			// default title is the Python client's, byte for byte.
			if _, fromCol := row.Data["title"]; !fromCol && !strings.Contains(wb["title"].(string), "'type'") &&
				!strings.Contains(wb["title"].(string), "{'west'") && gb["title"] != wb["title"] {
				t.Errorf("default title = %q, want %q", gb["title"], wb["title"])
			}
		})
	}
}

// checkUnsent checks the jobs of the rows the Python client failed on
// (udp-geometry rows 2, 3 and 5): an empty title falls back to the default
// title, an empty "offset" to the parameter's schema default 0.
func checkUnsent(t *testing.T, name string, i int, body any, node map[string]any) {
	t.Helper()
	args := node["arguments"].(map[string]any)
	b := body.(map[string]any)
	switch {
	case name == "udp-geometry" && (i == 2 || i == 5):
		if !strings.HasPrefix(b["title"].(string), "Process 'udp_geometry' with {") {
			t.Errorf("empty title cell: title = %q, want the default", b["title"])
		}
	case name == "udp-geometry" && i == 3:
		if args["offset"] != json.Number("0") {
			t.Errorf("empty offset cell: offset = %#v, want the schema default 0", args["offset"])
		}
		if g := args["geometry"].(map[string]any); len(g["coordinates"].([]any)) != 2 {
			t.Errorf("polygon with a hole: %v", g)
		}
	default:
		t.Errorf("row %d of %s has no expected body", i, name)
	}
}

func TestGoldenUDPGeometry(t *testing.T) {
	goldenCase(t, "udp-geometry", func(string) []string { return []string{"--process-id", "udp_geometry"} }, nil)
}

func TestGoldenUDPNoGeometry(t *testing.T) {
	goldenCase(t, "udp-no-geometry", func(string) []string { return []string{"--process-id", "tile_job"} }, nil)
}

func TestGoldenRemoteNamespace(t *testing.T) {
	url := func(docs string) string { return docs + "/processes/ndvi_stats.json" }
	goldenCase(t, "remote-namespace", func(docs string) []string {
		return []string{"--process-id", "ndvi_stats", "--namespace", url(docs),
			"--param", "spatial_extent=geometry", "--default", "cloud_cover=50"}
	}, url)
}
