package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/stac/stactest"
	"github.com/openeo-batch/worker/worker"
)

// TestDemoSTAC is issue 13's acceptance for the STAC export: the STAC
// Collection of a finished demo campaign validates against the STAC
// schemas, and its asset links resolve to the files on disk, also after
// the results folder has moved.
func TestDemoSTAC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	c := cmd(t.Context(), dir, nil, "demo", "--dir", "out", "--rows", "6")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	c = cmd(t.Context(), dir, nil, "export", "--db", "out/jobs.db", "--to", "out/results/stac", "--stac", "--root-dir", "out/results",
		"--title", "Demo NDVI")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("export --stac: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "5 items") {
		t.Errorf("export says %q, want 5 items (one tile of 6 fails)", stdout.String())
	}

	// Move the whole results folder: the catalogue goes with it.
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(filepath.Join(dir, "out", "results"), moved); err != nil {
		t.Fatal(err)
	}
	checker, err := stactest.New("../stac/testdata/schemas")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(filepath.Join(moved, "stac", "collection.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range readRows(t, filepath.Join(dir, "out", "jobs.db")) {
		if r.Status != driver.Finished {
			continue
		}
		want = append(want, filepath.Join(worker.JobDir(moved, r.ID), "result.tif"), worker.MetadataPath(moved, r.ID),
			worker.ResultsPath(moved, r.ID))
	}
	if rep.Items != 5 || len(rep.Assets) != len(want) {
		t.Fatalf("%d items, assets %v; want 5 items and assets %v", rep.Items, rep.Assets, want)
	}
	got := map[string]bool{}
	for _, a := range rep.Assets {
		got[a] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no asset resolves to %s", w)
		}
	}
}

// After a run of our own, the STAC export takes each Item's footprint, time
// and media types from the job's results metadata, which the run writes to
// job_<id>/job-results.json as the Python client does, not from the row:
// the fake back-end describes each job's results with the extent of the
// job's geometry (a box around the row's triangle), the time the job
// finished and each asset's media type. A job folder without the file (as
// an earlier version left it) gets it from worker download.
func TestExportUsesResultsMetadata(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{AssetNames: []string{"ndvi.tif", "stats.dat"},
		AssetTypes: map[string]string{"stats.dat": "application/x-ndvi-stats"}})
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title,geometry\n"+
		"tri 0,\"POLYGON ((5 51, 6 51, 5 52.5, 5 51))\"\n"+
		"tri 1,\"POLYGON ((7 50, 8 50, 7 50.5, 7 50))\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{
  "id": "zonal",
  "parameters": [{"name": "geometry", "description": "area", "schema": {"type": "object", "subtype": "geojson"}}],
  "process_graph": {"f": {"process_id": "filter_spatial", "arguments": {"geometries": {"from_parameter": "geometry"}}, "result": true}}
}`), 0o644)
	mustWork(t, dir, nil, "init", "--from", "in.csv", "--db", "jobs.db")
	backend := "fake=" + srv.URL
	mustWork(t, dir, fakeEnv, "run", "--db", "jobs.db", "--backend", backend, "--process", "p.json",
		"--root-dir", "res", "--poll", "20ms")
	res := filepath.Join(dir, "res")
	rows := readRows(t, filepath.Join(dir, "jobs.db"))
	for _, r := range rows {
		if _, err := os.Stat(worker.ResultsPath(res, r.ID)); err != nil {
			t.Fatalf("row %v: the run wrote no results metadata: %v", r.Data["title"], err)
		}
	}
	older := rowByTitle(t, rows, "tri 1")
	os.Remove(worker.ResultsPath(res, older.ID))
	if out := mustWork(t, dir, fakeEnv, "download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res"); !strings.Contains(out, "missing job-results.json") {
		t.Errorf("download does not name the missing results metadata:\n%s", out)
	}
	if _, err := os.Stat(worker.ResultsPath(res, older.ID)); err != nil {
		t.Fatalf("download did not write the results metadata: %v", err)
	}

	mustWork(t, dir, nil, "export", "--db", "jobs.db", "--to", "res/stac", "--stac", "--root-dir", "res")
	checker, err := stactest.New("../stac/testdata/schemas")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checker.Check(filepath.Join(res, "stac", "collection.json")); err != nil {
		t.Fatal(err)
	}
	for title, box := range map[string][]float64{"tri 0": {5, 51, 6, 52.5}, "tri 1": {7, 50, 8, 50.5}} {
		r := rowByTitle(t, rows, title)
		var meta struct {
			Properties struct{ Datetime string }
		}
		b, err := os.ReadFile(worker.ResultsPath(res, r.ID))
		if err != nil || json.Unmarshal(b, &meta) != nil || meta.Properties.Datetime == "" {
			t.Fatalf("%s: results metadata %s (%v) has no datetime", title, b, err)
		}
		var item struct {
			Geometry struct {
				Type        string
				Coordinates [][][]float64
			}
			BBox       []float64
			Properties map[string]any
			Assets     map[string]struct {
				Type  string
				Roles []string
			}
		}
		b, err = os.ReadFile(filepath.Join(res, "stac", r.ID, r.ID+".json"))
		if err != nil || json.Unmarshal(b, &item) != nil {
			t.Fatalf("%s: Item: %v\n%s", title, err, b)
		}
		w, s, e, n := box[0], box[1], box[2], box[3]
		wantRing := [][]float64{{w, s}, {e, s}, {e, n}, {w, n}, {w, s}}
		if item.Geometry.Type != "Polygon" || len(item.Geometry.Coordinates) != 1 ||
			fmt.Sprint(item.Geometry.Coordinates[0]) != fmt.Sprint(wantRing) || fmt.Sprint(item.BBox) != fmt.Sprint(box) {
			t.Errorf("%s: footprint %+v bbox %v, want the result geometry %v, not the row's triangle", title, item.Geometry, item.BBox, wantRing)
		}
		if item.Properties["datetime"] != meta.Properties.Datetime || item.Properties["start_datetime"] != nil {
			t.Errorf("%s: time %v .. %v datetime %v, want the results' datetime %s", title,
				item.Properties["start_datetime"], item.Properties["end_datetime"], item.Properties["datetime"], meta.Properties.Datetime)
		}
		if a := item.Assets["stats.dat"]; a.Type != "application/x-ndvi-stats" {
			t.Errorf("%s: stats.dat has type %q, not the results metadata's", title, a.Type)
		}
		if a := item.Assets["ndvi.tif"]; a.Type != "image/tiff; application=geotiff" || fmt.Sprint(a.Roles) != "[data]" {
			t.Errorf("%s: ndvi.tif: %+v", title, a)
		}
		if a, ok := item.Assets[worker.ResultsFile]; !ok || fmt.Sprint(a.Roles) != "[metadata]" {
			t.Errorf("%s: the results metadata is not a metadata asset: %+v", title, item.Assets)
		}
	}
}
