package stac_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/stac"
	"github.com/openeo-batch/worker/worker"
)

// Temporary files of atomic writes that a kill left in a job folder, and
// partial downloads, are never assets.
func TestExportSkipsTemporaryFiles(t *testing.T) {
	base := t.TempDir()
	store, root := campaign(t, base)
	dir := worker.JobDir(root, "j-a")
	write(t, filepath.Join(dir, ".job_j-a.json.535000463.tmp"), "{half")
	write(t, filepath.Join(dir, "data", ".b03.tif.12.tmp"), "half")
	write(t, filepath.Join(dir, "x.tif.part.meta"), "{}")
	out := filepath.Join(root, "stac")
	if _, err := stac.Export(t.Context(), store, out, stac.Options{RootDir: root, Table: "jobs.db"}); err != nil {
		t.Fatal(err)
	}
	var a struct{ Assets map[string]any }
	readJSON(t, filepath.Join(out, "j-a", "j-a.json"), &a)
	for _, k := range []string{".job_j-a.json.535000463.tmp", "data/.b03.tif.12.tmp", "x.tif.part.meta", "result.tif.part"} {
		if _, ok := a.Assets[k]; ok {
			t.Errorf("%s is an asset: %v", k, a.Assets)
		}
	}
	if _, ok := a.Assets["result.tif"]; !ok {
		t.Errorf("result.tif is not an asset: %v", a.Assets)
	}
}

// A finished job whose folder holds neither job-results.json nor any file
// besides the manager's own (the data lost, say) is incomplete: no Item
// without data is published as if whole.
func TestExportJobFolderWithoutResults(t *testing.T) {
	base := t.TempDir()
	store, root := campaign(t, base)
	dir := worker.JobDir(root, "j-a")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if p := filepath.Join(dir, e.Name()); p != worker.MetadataPath(root, "j-a") {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, filepath.Join(dir, ".result.tif.12.tmp"), "half")
	res, err := stac.Export(t.Context(), store, filepath.Join(root, "stac"), stac.Options{RootDir: root, Table: "jobs.db"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Problems {
		if p.JobID == "j-a" && p.ResultsMissing {
			return
		}
	}
	t.Errorf("j-a, with no result file, is not listed as incomplete: %+v", res.Problems)
}
