package split_test

import (
	"math"
	"testing"

	"github.com/openeo-batch/worker/split"
)

// FuzzParseArea feeds bounding boxes and GeoJSON text (seeds in
// testdata/fuzz/FuzzParseArea) to the area parser: it never panics, and an
// area it accepts has closed rings of finite coordinates, no edge across
// the antimeridian, and a bounding box with width and height, which a split in the area's own CRS turns
// into tiles that all lie within that box.
func FuzzParseArea(f *testing.F) {
	for _, s := range []string{
		"3,51,4,52",
		"412345,5612345,512345,5712345,EPSG:32631",
		`{"type": "Polygon", "coordinates": [[[3, 51], [4, 51], [4, 52], [3, 51]]]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := split.ParseArea(s)
		if err != nil {
			return
		}
		b := a.Bound()
		for _, v := range []float64{b.Min[0], b.Min[1], b.Max[0], b.Max[1]} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted %q with bounds %v", s, b)
			}
		}
		if !(b.Max[0] > b.Min[0] && b.Max[1] > b.Min[1]) {
			t.Fatalf("accepted %q without width or height: %v", s, b)
		}
		for _, p := range a.Polygons {
			for _, r := range p {
				if len(r) < 4 || r[0] != r[len(r)-1] {
					t.Fatalf("accepted %q with ring %v", s, r)
				}
				for k := 1; a.EPSG == split.WGS84 && k < len(r); k++ {
					if math.Abs(r[k][0]-r[k-1][0]) > 180 {
						t.Fatalf("accepted %q with an edge across the antimeridian: %v", s, r)
					}
				}
			}
		}
		if a.EPSG != split.WGS84 && a.EPSG != 32631 {
			return // keep PROJ to two known systems
		}
		size := max(b.Max[0]-b.Min[0], b.Max[1]-b.Min[1]) / 3
		tl, err := split.Grid{EPSG: a.EPSG, Size: size}.Split(a)
		if err != nil {
			return // e.g. a size that underflows
		}
		for _, tile := range tl.Tiles {
			tb := tile.Polygon.Bound()
			if tb.Min[0] < b.Min[0] || tb.Min[1] < b.Min[1] || tb.Max[0] > b.Max[0] || tb.Max[1] > b.Max[1] {
				t.Fatalf("%q: tile %v outside the area's box %v", s, tb, b)
			}
		}
	})
}
