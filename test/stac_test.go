package test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
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
