package wktgeo

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// Each way a lenient reader would change or drop part of a cell is an
// error that says why.
func TestParseRefuses(t *testing.T) {
	for s, why := range map[string]string{
		"POLYGON((0 0, 1 0, 1 1, 0 0)) trailing":            "after the geometry",
		"POLYGON((0 0, 1 0, 1 1, 0 0)),POINT(5 5)":          "several geometries",
		"SRID=3857;POLYGON((0 0, 1 0, 1 1, 0 0))":           "EPSG code in a column",
		" srid=4326;POINT(1 2)":                             "EWKT",
		"POLYGON((0 0, NaN 0, 1 1, 0 0))":                   "not a finite number",
		"POINT (inf 1)":                                     "not a finite number",
		"POINT (1e999 1)":                                   "beyond the range",
		"POINT (1e-999 1)":                                  "too small",
		"POLYGON((0 0, 1 0, 1 1))":                          "needs at least 4 positions",
		"POLYGON((0 0, 1 0, 1 1, 0 1))":                     "not closed",
		"MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)),((5 5, 6 6)))": "needs at least 4",
		"POLYGON EMPTY":                                     "EMPTY",
		"GEOMETRYCOLLECTION (POINT EMPTY)":                  "EMPTY",
		"LINESTRING (0 0)":                                  "a line needs at least 2",
		"MULTILINESTRING ((0 0, 1 1), (2 2))":               "a line needs at least 2",
		"CIRCLE (1 2)":                                      "unknown geometry type",
		strings.Repeat("GEOMETRYCOLLECTION (", 40) + "POINT (1 2)" + strings.Repeat(")", 40): "nested",
	} {
		_, err := Parse(s, nil)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: err = %v, want one saying %q", s, err, why)
		}
	}
}

func TestParseKeeps(t *testing.T) {
	for s, want := range map[string]string{
		"POLYGON Z((0 0 1, 1 0 1, 1 1 1, 0 0 1))": `{"coordinates":[[[0,0,1],[1,0,1],[1,1,1],[0,0,1]]],"type":"Polygon"}`,
		"point m (1 2 3)":                         `{"coordinates":[1,2],"type":"Point"}`,
		" POINT(1e-300 -0.5) ":                    `{"coordinates":[1e-300,-0.5],"type":"Point"}`,
		"MULTIPOINT (0 0, (1 1))":                 `{"coordinates":[[0,0],[1,1]],"type":"MultiPoint"}`,
	} {
		g, err := Parse(s, nil)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if b, _ := json.Marshal(g); string(b) != want {
			t.Errorf("%q: %s, want %s", s, b, want)
		}
	}
}

// FuzzParse: what Parse takes has a GeoJSON type, only finite numbers,
// and marshals to JSON (which NaN would not).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"POINT (1 2)", "POLYGON ((0 0, 1 0, 1 1, 0 0))", "SRID=4326;POINT (1 2)",
		"POINT (1 2) x", "POINT (NaN 1)", "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING Z (0 0 0, 1 1 1))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := Parse(s, nil)
		if err != nil {
			return
		}
		if !IsType(g["type"].(string)) {
			t.Fatalf("%q: type %v", s, g["type"])
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case float64:
				if math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("%q: coordinate %v", s, x)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(g)
		if _, err := json.Marshal(g); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	})
}
