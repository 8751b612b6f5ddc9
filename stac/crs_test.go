package stac_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/duckdb"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/stac"
	"github.com/openeo-batch/worker/worker"
)

// TestExportReprojects is review 3's item 6: the footprints of a
// projected table (worker split --projection utm: an epsg column; or a
// GeoParquet that names its CRS) become longitude/latitude Items, as STAC
// requires, and the catalogue validates; a row whose CRS nothing names is
// left out, saying why.
func TestExportReprojects(t *testing.T) {
	const utmSquare = "POLYGON ((500000 5600000, 520000 5600000, 520000 5620000, 500000 5620000, 500000 5600000))"
	for _, c := range []struct {
		name  string
		open  func(string) (driver.Store, error)
		cols  []string
		rows  [][]any
		crsOf int // the table's own CRS
	}{
		{"epsg column", func(p string) (driver.Store, error) { return sqlite.Open(t.Context(), p+".db") },
			[]string{"tile_id", "epsg", "geometry", "id", "status", "start_time", "updated_at"},
			[][]any{
				{"a", int64(32631), utmSquare, "j-a", "finished", "2024-05-01T10:00:00Z", "2024-05-01T10:20:00Z"},
				{"b", nil, utmSquare, "j-b", "finished", "2024-05-01T10:00:00Z", "2024-05-01T10:20:00Z"},
			}, 0},
		{"GeoParquet crs", func(p string) (driver.Store, error) { return duckdb.Open(t.Context(), p+".parquet") },
			[]string{"tile_id", "geometry", "id", "status", "start_time", "updated_at"},
			[][]any{{"a", utmSquare, "j-a", "finished", "2024-05-01T10:00:00Z", "2024-05-01T10:20:00Z"}}, 32631},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			store, err := c.open(filepath.Join(base, "jobs"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if c.crsOf != 0 {
				def, err := crs.LookupCRS(c.crsOf)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.(driver.CRSKeeper).SetGeometryCRS("geometry", def.PROJJSON); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.Init(t.Context(), c.cols, func(yield func([]any, error) bool) {
				for _, r := range c.rows {
					if !yield(r, nil) {
						return
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(base, "results")
			for _, id := range []string{"j-a", "j-b"} {
				write(t, filepath.Join(worker.JobDir(root, id), "result.tif"), "tif")
				write(t, worker.MetadataPath(root, id), `{"id": "`+id+`", "status": "finished"}`)
			}
			res, err := stac.Export(t.Context(), store, filepath.Join(root, "stac"), stac.Options{RootDir: root})
			if err != nil {
				t.Fatal(err)
			}
			if res.Items != 1 {
				t.Fatalf("%d items, want 1: %+v", res.Items, res.Problems)
			}
			if len(c.rows) == 2 && (len(res.Problems) != 1 || res.Problems[0].JobID != "j-b" || !strings.Contains(res.Problems[0].Err, "epsg column")) {
				t.Errorf("problems %+v, want j-b's unknown CRS", res.Problems)
			}
			var item struct {
				Geometry struct {
					Coordinates [][][]float64 `json:"coordinates"`
				} `json:"geometry"`
				BBox []float64 `json:"bbox"`
			}
			readJSON(t, filepath.Join(root, "stac", "j-a", "j-a.json"), &item)
			p := item.Geometry.Coordinates[0][0]
			// 500000, 5600000 in UTM zone 31N is 3 E, 50.5519 N.
			if math.Abs(p[0]-3) > 1e-6 || math.Abs(p[1]-50.5519) > 1e-4 || len(item.BBox) != 4 || item.BBox[3] > 51 {
				t.Errorf("footprint starts at %v, bbox %v; want longitude/latitude near 3, 50.5519", p, item.BBox)
			}
			if _, err := checker(t).Check(filepath.Join(root, "stac", "collection.json")); err != nil {
				t.Error(err)
			}
		})
	}
}
