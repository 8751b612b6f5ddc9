package crs_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/openeo-batch/worker/internal/crs"
)

// FuzzDefinitions feeds CRS definitions as GeoParquet files and DuckDB
// types carry them, and GeoJSON geometries, to their readers (seeds in
// testdata/fuzz/FuzzDefinitions): they never panic, an EPSG code read is
// positive, and MapPositions with the identity keeps a geometry's
// positions.
func FuzzDefinitions(f *testing.F) {
	for _, s := range []string{
		`{"type":"ProjectedCRS","name":"WGS 84 / UTM zone 31N","id":{"authority":"EPSG","code":32631}}`,
		`{"type":"GeographicCRS","id":{"authority":"OGC","code":"CRS84"}}`,
		`EPSG:32631`,
		`GEOMETRY('{"ids":[{"authority":"EPSG","code":"3857"}]}')`,
		`{"type":"Polygon","coordinates":[[[500000,5600000],[520000,5600000],[520000,5620000],[500000,5600000]]]}`,
		`{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[3,50,7]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := crs.EPSGOfPROJJSON(s); err == nil && n < 0 {
			t.Fatalf("EPSG code %d from %q", n, s)
		}
		if def, ok := crs.OfGeometryType(s); ok {
			crs.EPSGOfPROJJSON(def)
		}
		before, ok := crs.PositionsBound(json.RawMessage(s))
		out, err := crs.MapPositions(json.RawMessage(s), func(x, y float64) (float64, float64, error) { return x, y, nil })
		if err != nil {
			return
		}
		after, ok2 := crs.PositionsBound(out)
		if ok != ok2 || ok && (before != after && !math.IsNaN(before.Min[0])) {
			t.Fatalf("identity moved the positions of %q: %v -> %v", s, before, after)
		}
	})
}
