package stac_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/stac"
	"github.com/openeo-batch/worker/worker"
)

// FuzzExport feeds the documents a back-end writes into a job folder
// (job-results.json, job_<id>.json) and the row's WKT geometry to Export
// (seeds in testdata/fuzz/FuzzExport): whatever they hold, Export never
// fails on them (a document that is no JSON object is reported and not used), and it either reports the row as left out or writes an
// Item and a Collection that the STAC schemas accept.
func FuzzExport(f *testing.F) {
	f.Add(`{"geometry": {"type": "Polygon", "coordinates": [[[6, 50], [7, 50], [7, 51], [6, 50]]]}, "properties": {"datetime": "2024-01-01T00:00:00Z"}, "assets": {"r.tif": {"type": "image/tiff"}}}`,
		`{"created": "2024-01-01T00:00:00Z", "updated": "2024-01-02T00:00:00Z"}`, "POLYGON ((5 51, 6 51, 6 52, 5 51))")
	f.Add(`{"geometry": {"type": "GeometryCollection", "geometries": []}}`, `{"geometry": {"type": "Point", "coordinates": [1e300, 2]}}`, "POINT (500000 5600000)")
	c := checker(f)
	f.Fuzz(func(t *testing.T, results, job, geometry string) {
		base := t.TempDir()
		store, err := sqlite.Open(t.Context(), filepath.Join(base, "jobs.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		row := []any{geometry, "j1", "finished", "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"}
		if err := store.Init(t.Context(), []string{"geometry", "id", "status", "start_time", "updated_at"},
			func(yield func([]any, error) bool) { yield(row, nil) }); err != nil {
			return // a geometry the store refuses never reaches Export
		}
		root := filepath.Join(base, "results")
		os.MkdirAll(worker.JobDir(root, "j1"), 0o755)
		os.WriteFile(filepath.Join(worker.JobDir(root, "j1"), "r.tif"), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(worker.JobDir(root, "j1"), stac.ResultsFile), []byte(results), 0o644)
		os.WriteFile(worker.MetadataPath(root, "j1"), []byte(job), 0o644)
		out := filepath.Join(base, "stac")
		res, err := stac.Export(t.Context(), store, out, stac.Options{RootDir: root})
		if err != nil {
			t.Fatal(err)
		}
		if res.Items == 0 && (len(res.Problems) == 0 || !res.Problems[0].Skipped) {
			t.Fatalf("no item and no reason: %+v", res)
		}
		if _, err := c.Check(filepath.Join(out, "collection.json")); err != nil {
			t.Fatalf("results %q, job %q, geometry %q: %v", results, job, geometry, err)
		}
	})
}
