package stac_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/stac"
	"github.com/openeo-batch/worker/stac/stactest"
	"github.com/openeo-batch/worker/worker"
)

const schemas = "testdata/schemas"

func checker(t testing.TB) *stactest.Checker {
	t.Helper()
	c, err := stactest.New(schemas)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// campaign makes a finished campaign by hand: a table and job folders
// laid out as worker run and the Python client leave them.
func campaign(t *testing.T, base string) (driver.Store, string) {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(base, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	square := "POLYGON ((5 51, 5.1 51, 5.1 51.1, 5 51.1, 5 51))"
	cols := []string{"tile", "title", "platform", "geometry", "id", "status", "start_time", "updated_at"}
	rows := [][]any{
		{"A", "NDVI A", "S2", square, "j-a", "finished", "2024-05-01T10:00:00Z", "2024-05-01T10:20:00Z"},
		{"B", nil, nil, square, "j-b", "finished", "2024-05-01T11:00:00Z", "2024-05-01T11:30:00Z"},
		{"C", nil, nil, square, "j-c", "finished", "2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"},
		{"D", nil, nil, square, "j-d", "error", "2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"},
		{"E", nil, nil, "POLYGON ((500000 5600000, 520000 5600000, 520000 5620000, 500000 5600000))", "j-e", "finished", "2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"},
		{"F", nil, nil, nil, "j-f", "finished", "2024-05-02T08:00:00Z", "2024-05-02T09:00:00Z"},
	}
	if err := store.Init(t.Context(), cols, func(yield func([]any, error) bool) {
		for _, r := range rows {
			if !yield(r, nil) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "results")
	// A: a GeoTIFF, a file with an awkward name, the job's metadata.
	write(t, filepath.Join(worker.JobDir(root, "j-a"), "result.tif"), "tif")
	write(t, filepath.Join(worker.JobDir(root, "j-a"), "my result #1.json"), "{}")
	write(t, filepath.Join(worker.JobDir(root, "j-a"), "result.tif.part"), "partial leftover")
	write(t, filepath.Join(worker.JobDir(root, "j-a"), "data", "b03.tif"), "band")
	write(t, filepath.Join(worker.JobDir(root, "j-a"), "data", "b04.tif.part"), "partial")
	write(t, worker.MetadataPath(root, "j-a"), `{"id": "j-a", "status": "finished", "created": "2024-05-01T09:59:00Z", "updated": "2024-05-01T10:19:00Z"}`)
	// B: the results metadata as the Python client saves it, with the
	// job's own geometry, datetime and media types.
	write(t, filepath.Join(worker.JobDir(root, "j-b"), "out.nc"), "netcdf")
	write(t, filepath.Join(worker.JobDir(root, "j-b"), stac.ResultsFile), `{"type": "Feature", "stac_version": "1.0.0", "id": "j-b",
 "geometry": {"type": "Polygon", "coordinates": [[[6, 50], [7, 50], [7, 51], [6, 51], [6, 50]]]},
 "properties": {"datetime": null, "start_datetime": "2023-01-01T00:00:00+01:00", "end_datetime": "2023-12-31T00:00:00Z"},
 "assets": {"out.nc": {"href": "https://example.org/out.nc", "type": "application/netcdf", "roles": ["data"], "title": "NDVI cube"},
  "bands\\b05.tif": {"href": "https://example.org/b05.tif?sig=abc", "type": "image/tiff; application=geotiff; profile=cloud-optimized"}}}`)
	// The key with a backslash is saved in a folder (worker.AssetPath).
	write(t, filepath.Join(worker.JobDir(root, "j-b"), "bands", "b05.tif"), "cog")
	write(t, worker.MetadataPath(root, "j-b"), `{"id": "j-b", "status": "finished"}`)
	// C: finished, but its results were never downloaded.
	// F: no geometry at all.
	write(t, filepath.Join(worker.JobDir(root, "j-f"), "stats.csv"), "a,b\n")
	write(t, worker.MetadataPath(root, "j-f"), `{"id": "j-f", "status": "finished"}`)
	return store, root
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestExportValidatesAndResolves(t *testing.T) {
	base := t.TempDir()
	store, root := campaign(t, base)
	out := filepath.Join(root, "stac")
	res, err := stac.Export(t.Context(), store, out, stac.Options{RootDir: root, Table: "jobs.db", Title: "Test campaign"})
	if err != nil {
		t.Fatal(err)
	}
	// A, B, C and F; D is not finished, E's geometry is projected.
	if res.Items != 4 {
		t.Errorf("%d items, want 4", res.Items)
	}
	var skipped, incomplete []string
	for _, p := range res.Problems {
		if p.Skipped {
			skipped = append(skipped, p.JobID)
		} else {
			incomplete = append(incomplete, p.JobID)
		}
	}
	if !slices.Equal(skipped, []string{"j-e"}) || !slices.Equal(incomplete, []string{"j-c"}) {
		t.Errorf("skipped %v, incomplete %v; want [j-e] and [j-c]: %+v", skipped, incomplete, res.Problems)
	}

	c := checker(t)
	rep, err := c.Check(filepath.Join(out, "collection.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Items != 4 || len(rep.Assets) != 10 {
		t.Errorf("checked %d items and %d assets, want 4 and 10: %v", rep.Items, len(rep.Assets), rep.Assets)
	}

	var a struct {
		Geometry   map[string]any
		BBox       []float64
		Properties map[string]any
		Assets     map[string]struct {
			Href, Type string
			Roles      []string
		}
	}
	readJSON(t, filepath.Join(out, "j-a", "j-a.json"), &a)
	if a.Properties["start_datetime"] != "2024-05-01T10:00:00Z" || a.Properties["end_datetime"] != "2024-05-01T10:19:00Z" {
		t.Errorf("A's interval: %v .. %v", a.Properties["start_datetime"], a.Properties["end_datetime"])
	}
	if a.Properties["tile"] != "A" || a.Properties["title"] != "NDVI A" || a.Properties["table:platform"] != "S2" ||
		a.Properties["status"] != "finished" || a.Properties["id"] != "j-a" {
		t.Errorf("A's properties: %v", a.Properties)
	}
	if _, ok := a.Properties["geometry"]; ok {
		t.Error("the geometry column is repeated in the properties")
	}
	if !slices.Equal(a.BBox, []float64{5, 51, 5.1, 51.1}) {
		t.Errorf("A's bbox %v", a.BBox)
	}
	if tif := a.Assets["result.tif"]; tif.Type != "image/tiff; application=geotiff" || tif.Href != "../../job_j-a/result.tif" || !slices.Equal(tif.Roles, []string{"data"}) {
		t.Errorf("A's GeoTIFF asset: %+v", tif)
	}
	if odd := a.Assets["my result #1.json"]; odd.Href != "../../job_j-a/my%20result%20%231.json" {
		t.Errorf("href of a name with a space and a #: %q", odd.Href)
	}
	if sub := a.Assets["data/b03.tif"]; sub.Href != "../../job_j-a/data/b03.tif" || sub.Type != "image/tiff; application=geotiff" {
		t.Errorf("asset in a sub-folder: %+v", sub)
	}
	if _, ok := a.Assets["data/b04.tif.part"]; ok {
		t.Error("a partial download in a sub-folder is an asset")
	}
	if m := a.Assets["job_j-a.json"]; !slices.Equal(m.Roles, []string{"metadata"}) {
		t.Errorf("metadata asset: %+v", m)
	}
	if _, ok := a.Assets["result.tif.part"]; ok {
		t.Error("a partial download is an asset")
	}

	var b struct {
		BBox       []float64
		Properties map[string]any
		Assets     map[string]struct{ Type, Title string }
	}
	readJSON(t, filepath.Join(out, "j-b", "j-b.json"), &b)
	if !slices.Equal(b.BBox, []float64{6, 50, 7, 51}) {
		t.Errorf("B's footprint is not the result geometry: bbox %v", b.BBox)
	}
	if b.Properties["start_datetime"] != "2022-12-31T23:00:00Z" || b.Properties["end_datetime"] != "2023-12-31T00:00:00Z" {
		t.Errorf("B's interval is not the results' (in UTC): %v .. %v", b.Properties["start_datetime"], b.Properties["end_datetime"])
	}
	if b.Properties["geometry"] == nil {
		t.Error("B's own geometry column is lost when the result geometry is the footprint")
	}
	if nc := b.Assets["out.nc"]; nc.Type != "application/netcdf" || nc.Title != "NDVI cube" {
		t.Errorf("B's asset does not take the results' media type and title: %+v", nc)
	}
	if cog := b.Assets["bands/b05.tif"]; cog.Type != "image/tiff; application=geotiff; profile=cloud-optimized" {
		t.Errorf("B's asset saved under a cleaned key does not take the results' media type: %+v", cog)
	}
	if m := b.Assets[stac.ResultsFile]; m.Type != "application/json" {
		t.Errorf("B's results metadata asset: %+v", m)
	}

	var f struct {
		Geometry any
		BBox     []float64
	}
	readJSON(t, filepath.Join(out, "j-f", "j-f.json"), &f)
	if f.Geometry != nil || f.BBox != nil {
		t.Errorf("F has no geometry, yet geometry %v and bbox %v", f.Geometry, f.BBox)
	}
}

func TestExportMoved(t *testing.T) {
	base := t.TempDir()
	store, root := campaign(t, base)
	if _, err := stac.Export(t.Context(), store, filepath.Join(root, "stac"), stac.Options{RootDir: root}); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	rep, err := checker(t).Check(filepath.Join(moved, "stac", "collection.json"))
	if err != nil {
		t.Fatalf("after a move: %v", err)
	}
	if rep.Items != 4 {
		t.Errorf("%d items", rep.Items)
	}
}

func TestExportRefusesFullFolder(t *testing.T) {
	base := t.TempDir()
	store, root := campaign(t, base)
	out := filepath.Join(base, "out")
	write(t, filepath.Join(out, "keep.txt"), "mine")
	_, err := stac.Export(t.Context(), store, out, stac.Options{RootDir: root})
	if !errors.Is(err, stac.ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "keep.txt")); string(b) != "mine" {
		t.Error("the folder was changed")
	}
	// A file is never taken for the folder (nor removed).
	file := filepath.Join(base, "jobs.db")
	if _, err := stac.Export(t.Context(), store, file, stac.Options{RootDir: root}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("--to a file: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the file is gone: %v", err)
	}
	// A folder whose parent is missing is made.
	deep := filepath.Join(base, "a", "b", "stac")
	if _, err := stac.Export(t.Context(), store, deep, stac.Options{RootDir: root}); err != nil {
		t.Errorf("--to a new nested folder: %v", err)
	}
	if _, err := checker(t).Check(filepath.Join(deep, "collection.json")); err != nil {
		t.Error(err)
	}
}

// TestCheckerRefuses proves that the schemas bite: documents that break
// the STAC rules are refused.
func TestCheckerRefuses(t *testing.T) {
	c := checker(t)
	good := `{"type": "Feature", "stac_version": "1.1.0", "id": "x", "geometry": null, "properties": {"datetime": "2024-01-01T00:00:00Z"}, "links": [], "assets": {}}`
	if err := c.ValidateItem([]byte(good)); err != nil {
		t.Fatalf("a minimal Item is refused: %v", err)
	}
	for name, doc := range map[string]string{
		"no datetime":        strings.Replace(good, `"datetime": "2024-01-01T00:00:00Z"`, `"datetime": null`, 1),
		"local time":         strings.Replace(good, `00:00:00Z`, `00:00:00+02:00`, 1),
		"geometry sans bbox": strings.Replace(good, `"geometry": null`, `"geometry": {"type": "Point", "coordinates": [1, 2]}`, 1),
		"bad version":        strings.Replace(good, `1.1.0`, `1.1`, 1),
		"asset without href": strings.Replace(good, `"assets": {}`, `"assets": {"a": {"type": "image/png"}}`, 1),
	} {
		if err := c.ValidateItem([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := c.ValidateCollection([]byte(`{"type": "Collection", "stac_version": "1.1.0", "id": "c", "description": "d", "links": []}`)); err == nil {
		t.Error("a Collection without license and extent is accepted")
	}
}

// A Collection id unsafe in a path or URL and a license that is no SPDX
// identifier (nor other) are refused; a column named like an extension's
// field ("proj:epsg") is written under table:, as no extension is declared.
func TestOptionsAndExtensionNames(t *testing.T) {
	for _, o := range []stac.Options{{ID: "a/b"}, {ID: ".."}, {ID: "a b"}, {ID: "x?y"}, {License: "notalicense!"}, {License: "MIT OR Apache-2.0"}} {
		var oe *stac.OptionError
		if err := stac.CheckOptions(o); !errors.As(err, &oe) {
			t.Errorf("%+v: %v, want an OptionError", o, err)
		}
	}
	for _, o := range []stac.Options{{}, {ID: "ndvi-2024_v1.0", License: "CC-BY-4.0"}, {License: "other"}, {License: "proprietary"}, {License: "GPL-3.0+"}} {
		if err := stac.CheckOptions(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := stac.Export(t.Context(), nil, t.TempDir(), stac.Options{RootDir: t.TempDir(), ID: "a/b"}); err == nil || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("Export with id a/b: %v", err)
	}
	for col, want := range map[string]string{"proj:epsg": "table:proj:epsg", "eo:cloud_cover": "table:eo:cloud_cover", "epsg": "epsg", "platform": "table:platform"} {
		if got := stac.PropertyName(col, int64(1)); got != want {
			t.Errorf("column %s is property %s, want %s", col, got, want)
		}
	}
}
