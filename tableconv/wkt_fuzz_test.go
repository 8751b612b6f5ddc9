package tableconv

import (
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkt"
)

// FuzzWKT: a geometry that parses writes back as WKT that parses to the
// same geometry, as export and init do between CSV (WKT) and GeoJSON.
func FuzzWKT(f *testing.F) {
	for _, s := range []string{
		"POINT (1 2)", "POLYGON ((5 51, 5.1 51, 5.1 51.1, 5 51))", "MULTIPOLYGON (((1 1, 2 2, 3 1, 1 1)))",
		"LINESTRING (0 0, 1e-9 1e300)", "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))",
		"POLYGON ((1 2, 3", "POINT EMPTY", "MULTIPOINT ((1 2), (3 4))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := wkt.Unmarshal(s)
		if err != nil {
			return
		}
		again, err := wkt.Unmarshal(wkt.MarshalString(g))
		if err != nil {
			t.Fatalf("%q parsed, but its WKT %q does not: %v", s, wkt.MarshalString(g), err)
		}
		if !orb.Equal(g, again) {
			t.Fatalf("%q: %v became %v", s, g, again)
		}
	})
}
