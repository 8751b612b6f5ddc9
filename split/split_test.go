package split_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/clip"
	"github.com/paulmach/orb/planar"
	"github.com/twpayne/go-proj/v11"

	"github.com/openeo-batch/worker/split"
)

const utm31 = 32631

func mustArea(t *testing.T) func(split.Area, error) split.Area {
	return func(a split.Area, err error) split.Area {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
}

func ids(tl *split.Tiling) []string {
	var out []string
	for _, t := range tl.Tiles {
		out = append(out, t.ID)
	}
	sort.Strings(out)
	return out
}

// allCells lists "i_j" for a cols x rows grid, minus drop.
func allCells(cols, rows int, drop ...string) []string {
	var out []string
	for i := range cols {
		for j := range rows {
			if id := fmt.Sprintf("%d_%d", i, j); !slices.Contains(drop, id) {
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestUTMBox is issue 13's first acceptance: a 100 km x 100 km box given
// in a UTM projection, with 20 km tiles in that projection, gives exactly
// 25 tiles of 20 km, which tile the box without overlap.
func TestUTMBox(t *testing.T) {
	a := mustArea(t)(split.ParseBBox("412345,5612345,512345,5712345,EPSG:32631"))
	tl, err := split.Grid{EPSG: utm31, Size: 20_000}.Split(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Tiles) != 25 {
		t.Fatalf("%d tiles, want 25", len(tl.Tiles))
	}
	total := 0.0
	for _, tile := range tl.Tiles {
		b := tile.Polygon.Bound()
		if w, h := b.Max[0]-b.Min[0], b.Max[1]-b.Min[1]; math.Abs(w-20_000) > 1e-6 || math.Abs(h-20_000) > 1e-6 {
			t.Errorf("tile %s is %v x %v m", tile.ID, w, h)
		}
		// Anchored at the box's lower-left corner.
		if dx, dy := math.Mod(b.Min[0]-412345, 20_000), math.Mod(b.Min[1]-5612345, 20_000); math.Abs(dx) > 1e-6 || math.Abs(dy) > 1e-6 {
			t.Errorf("tile %s at %v is not on the box's grid", tile.ID, b.Min)
		}
		total += planar.Area(tile.Polygon)
	}
	if math.Abs(total-1e10) > 1 {
		t.Errorf("tiles cover %v m², want 1e10", total)
	}
	if got := ids(tl); !slices.Equal(got, allCells(5, 5)) {
		t.Errorf("tile ids %v", got)
	}
}

// TestPythonAlignment reproduces split_area's grid: x from the false
// easting 500000, y from 0, cells clipped at the box (computed here by
// hand from the formulas of openeo.extra.job_management).
func TestPythonAlignment(t *testing.T) {
	a := mustArea(t)(split.ParseBBox("412345,5612345,450000,5650000,32631"))
	tl, err := split.Grid{EPSG: utm31, Size: 20_000, Align: split.AlignPython}.Split(a)
	if err != nil {
		t.Fatal(err)
	}
	// x cells -5..-3 (400000..460000), y cells 280..282 (5600000..5660000).
	xs := [][2]float64{{412345, 420000}, {420000, 440000}, {440000, 450000}}
	ys := [][2]float64{{5612345, 5620000}, {5620000, 5640000}, {5640000, 5650000}}
	var want []orb.Bound
	for _, x := range xs {
		for _, y := range ys {
			want = append(want, orb.Bound{Min: orb.Point{x[0], y[0]}, Max: orb.Point{x[1], y[1]}})
		}
	}
	if len(tl.Tiles) != len(want) {
		t.Fatalf("%d tiles, want %d", len(tl.Tiles), len(want))
	}
	for i, tile := range tl.Tiles {
		if got := tile.Polygon.Bound(); !got.Equal(want[i]) {
			t.Errorf("tile %d (%s): %v, want %v", i, tile.ID, got, want[i])
		}
	}
	if tl.Tiles[0].ID != "-5_280" {
		t.Errorf("first tile id %q, want -5_280 (the cell's grid indices)", tl.Tiles[0].ID)
	}
}

// toUTM projects longitude/latitude into UTM 31N, with PROJ directly.
func transformer(t *testing.T) *proj.PJ {
	t.Helper()
	pj, err := proj.NewCRSToCRS("EPSG:4326", "EPSG:32631", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pj, err = pj.NormalizeForVisualization(); err != nil {
		t.Fatal(err)
	}
	return pj
}

// TestLonLatBoxInUTM is issue 13's second acceptance: a longitude/latitude
// box tiled in its UTM zone is covered with no gap, by tiles at most 20 km
// on a side, none of them outside the box. Each claim is checked
// independently of the split's own geometry code: coverage by projecting
// a lattice of points of the box with PROJ, "not outside" by projecting
// each tile back to longitude/latitude and clipping it with the box there.
func TestLonLatBoxInUTM(t *testing.T) {
	box := orb.Bound{Min: orb.Point{3.2, 50.9}, Max: orb.Point{4.1, 51.5}}
	a := mustArea(t)(split.ParseBBox("3.2,50.9,4.1,51.5"))
	tl, err := split.Grid{EPSG: utm31, Size: 20_000}.Split(a)
	if err != nil {
		t.Fatal(err)
	}
	pj := transformer(t)
	var bounds []orb.Bound
	for _, tile := range tl.Tiles {
		b := tile.Polygon.Bound()
		if w, h := b.Max[0]-b.Min[0], b.Max[1]-b.Min[1]; w > 20_000+1e-6 || h > 20_000+1e-6 || w <= 0 || h <= 0 {
			t.Errorf("tile %s is %v x %v m", tile.ID, w, h)
		}
		bounds = append(bounds, b)
	}
	// No gap: every point of a 61 x 61 lattice over the box, edges and
	// corners included, lies in a tile.
	const n = 60
	for i := 0; i <= n; i++ {
		for j := 0; j <= n; j++ {
			lon := box.Min[0] + (box.Max[0]-box.Min[0])*float64(i)/n
			lat := box.Min[1] + (box.Max[1]-box.Min[1])*float64(j)/n
			c, err := pj.Forward(proj.NewCoord(lon, lat, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			p := orb.Point{c[0], c[1]}
			if !slices.ContainsFunc(bounds, func(b orb.Bound) bool { return b.Pad(1e-6).Contains(p) }) {
				t.Errorf("%v (%v) is in no tile", orb.Point{lon, lat}, p)
			}
		}
	}
	// None outside: each tile, back in longitude/latitude, shares area
	// with the box.
	for _, tile := range tl.Tiles {
		var ring orb.Ring
		r := tile.Polygon[0]
		for k := 0; k < len(r)-1; k++ {
			for s := range 16 {
				f := float64(s) / 16
				c, err := pj.Inverse(proj.NewCoord(r[k][0]+f*(r[k+1][0]-r[k][0]), r[k][1]+f*(r[k+1][1]-r[k][1]), 0, 0))
				if err != nil {
					t.Fatal(err)
				}
				ring = append(ring, orb.Point{c[0], c[1]})
			}
		}
		ring = append(ring, ring[0])
		inside := clip.Polygon(box, orb.Polygon{ring})
		if inside == nil || planar.Area(inside) <= 0 {
			t.Errorf("tile %s (%v) lies outside the box", tile.ID, tile.Polygon.Bound())
		}
	}
	// No overlap: the tiles' areas add up to their union's bounding box
	// only if they do not overlap; check pairwise.
	for i := range bounds {
		for j := i + 1; j < len(bounds); j++ {
			if ov := overlapArea(bounds[i], bounds[j]); ov > 1e-3 {
				t.Errorf("tiles %s and %s overlap by %v m²", tl.Tiles[i].ID, tl.Tiles[j].ID, ov)
			}
		}
	}
	if len(tl.Tiles) < 12 {
		t.Errorf("only %d tiles for a box of about 63 x 67 km", len(tl.Tiles))
	}
}

func overlapArea(a, b orb.Bound) float64 {
	w := min(a.Max[0], b.Max[0]) - max(a.Min[0], b.Min[0])
	h := min(a.Max[1], b.Max[1]) - max(a.Min[1], b.Min[1])
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

func utmArea(polys ...orb.Polygon) split.Area {
	return split.Area{Polygons: polys, EPSG: utm31}
}

func rect(x0, y0, x1, y1 float64) orb.Polygon {
	return orb.Bound{Min: orb.Point{x0, y0}, Max: orb.Point{x1, y1}}.ToPolygon()
}

// TestConcavePolygon: a U-shaped area; the cells inside its notch are
// dropped, those the arms reach are kept (expected cells worked out by
// hand).
func TestConcavePolygon(t *testing.T) {
	// 100 km square at (400000, 5600000) with a notch from the top,
	// x 430..470 km, y 5650..5700 km. Cells are 20 km from the corner:
	// column 2 (440..460 km) rows 3 and 4 (5660..5700 km) lie in the notch.
	u := orb.Polygon{orb.Ring{
		{400000, 5600000}, {500000, 5600000}, {500000, 5700000}, {470000, 5700000},
		{470000, 5650000}, {430000, 5650000}, {430000, 5700000}, {400000, 5700000}, {400000, 5600000},
	}}
	tl, err := split.Grid{EPSG: utm31, Size: 20_000}.Split(utmArea(u))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(tl), allCells(5, 5, "2_3", "2_4"); !slices.Equal(got, want) {
		t.Errorf("tiles %v\nwant %v", got, want)
	}
	// Tiles are the grid cells (clipped at the bounding box), as
	// split_area returns them, not the cells cut to the polygon.
	for _, tile := range tl.Tiles {
		if a := planar.Area(tile.Polygon); math.Abs(a-4e8) > 1e-3 {
			t.Errorf("tile %s has area %v", tile.ID, a)
		}
	}
}

// TestMultiPolygon: two squares at opposite corners of a 100 km box keep
// only their own cells; a hole drops the cell it covers.
func TestMultiPolygon(t *testing.T) {
	a := utmArea(rect(400000, 5600000, 420000, 5620000), rect(485000, 5685000, 500000, 5700000))
	tl, err := split.Grid{EPSG: utm31, Size: 20_000}.Split(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(tl); !slices.Equal(got, []string{"0_0", "4_4"}) {
		t.Errorf("tiles %v, want [0_0 4_4]", got)
	}
	// The second square's cell is clipped at the area's bounding box.
	if b := tl.Tiles[1].Polygon.Bound(); !b.Equal(orb.Bound{Min: orb.Point{480000, 5680000}, Max: orb.Point{500000, 5700000}}) {
		t.Errorf("second tile %v", b)
	}

	holed := orb.Polygon{
		rect(400000, 5600000, 460000, 5660000)[0],
		orb.Ring{{420000, 5620000}, {420000, 5640000}, {440000, 5640000}, {440000, 5620000}, {420000, 5620000}},
	}
	tl, err = split.Grid{EPSG: utm31, Size: 20_000}.Split(utmArea(holed))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(tl), allCells(3, 3, "1_1"); !slices.Equal(got, want) {
		t.Errorf("with a hole: tiles %v, want %v", got, want)
	}
}

// TestGeoJSONMultiPolygonInUTM: a longitude/latitude MultiPolygon read
// from GeoJSON; every tile overlaps one of its parts (checked back in
// longitude/latitude) and its parts are covered.
func TestGeoJSONMultiPolygonInUTM(t *testing.T) {
	a := mustArea(t)(split.ParseGeoJSON([]byte(`{"type": "FeatureCollection", "features": [
	 {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon", "coordinates": [
	   [[[3.0, 51.0], [3.2, 51.0], [3.2, 51.1], [3.0, 51.1], [3.0, 51.0]]],
	   [[[4.0, 51.6], [4.3, 51.6], [4.3, 51.8], [4.0, 51.8], [4.0, 51.6]]]]}}]}`)))
	tl, err := split.Grid{EPSG: utm31, Size: 10_000}.Split(a)
	if err != nil {
		t.Fatal(err)
	}
	pj := transformer(t)
	parts := []orb.Bound{
		{Min: orb.Point{3.0, 51.0}, Max: orb.Point{3.2, 51.1}},
		{Min: orb.Point{4.0, 51.6}, Max: orb.Point{4.3, 51.8}},
	}
	for _, tile := range tl.Tiles {
		r := tile.Polygon[0]
		var ring orb.Ring
		for _, p := range r {
			c, err := pj.Inverse(proj.NewCoord(p[0], p[1], 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			ring = append(ring, orb.Point{c[0], c[1]})
		}
		if !slices.ContainsFunc(parts, func(b orb.Bound) bool {
			in := clip.Polygon(b, orb.Polygon{ring})
			return in != nil && planar.Area(in) > 0
		}) {
			t.Errorf("tile %s overlaps neither part", tile.ID)
		}
	}
	for _, b := range parts {
		for _, p := range []orb.Point{b.Min, b.Max, b.Center(), {b.Min[0], b.Max[1]}, {b.Max[0], b.Min[1]}} {
			c, _ := pj.Forward(proj.NewCoord(p[0], p[1], 0, 0))
			q := orb.Point{c[0], c[1]}
			if !slices.ContainsFunc(tl.Tiles, func(tile split.Tile) bool { return tile.Polygon.Bound().Pad(1e-6).Contains(q) }) {
				t.Errorf("%v is in no tile", p)
			}
		}
	}
	// The bounding box spans about 90 x 90 km: 100 cells of 10 km, of
	// which the two small parts reach few.
	if len(tl.Tiles) == 0 || len(tl.Tiles) > 20 {
		t.Errorf("%d tiles", len(tl.Tiles))
	}
}

func TestErrors(t *testing.T) {
	box := mustArea(t)(split.ParseBBox("3,51,4,52"))
	for _, c := range []struct {
		bbox, want string
	}{
		{"3,51,3,52", "zero width"},
		{"3,51,4,51", "zero height"},
		{"4,51,3,52", "antimeridian"},
		{"3,52,4,51", "north of north"},
		{"3,51,4", "west,south,east,north"},
		{"3,51,x,52", `east "x" is not a finite number`},
		{"3,51,NaN,52", "not a finite number"},
		{"3,51,4,52,EPSG:abc", "not an EPSG code"},
		{"400000,5600000,500000,5700000", "another CRS"},
	} {
		_, err := split.ParseBBox(c.bbox)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseBBox(%q) = %v, want an error saying %q", c.bbox, err, c.want)
		}
	}
	for _, size := range []float64{0, -20_000, math.NaN(), math.Inf(1)} {
		if _, err := (split.Grid{EPSG: utm31, Size: size}).Split(box); !errors.Is(err, split.ErrSize) {
			t.Errorf("size %v: %v, want ErrSize", size, err)
		}
	}
	if _, err := (split.Grid{EPSG: 999999, Size: 1}).Split(box); !errors.Is(err, split.ErrUnknownProjection) || !strings.Contains(err.Error(), "EPSG:999999") {
		t.Errorf("unknown projection: %v", err)
	}
	for _, n := range []int{5714, 4978, 4979, 9518} {
		if _, err := (split.Grid{EPSG: n, Size: 1}).Split(box); !errors.Is(err, split.ErrNotHorizontal) || !strings.Contains(err.Error(), fmt.Sprintf("EPSG:%d", n)) {
			t.Errorf("EPSG:%d, not 2D horizontal: %v", n, err)
		}
	}
	if _, err := split.ParseGeoJSON([]byte(`{"type":"Polygon","coordinates":[[[179,50],[-179,50],[-179,51],[179,51],[179,50]]]}`)); err == nil || !strings.Contains(err.Error(), "antimeridian") {
		t.Errorf("a ring across the antimeridian: %v", err)
	}
	if _, err := (split.Grid{EPSG: utm31, Size: 1}).Split(box); err == nil || !strings.Contains(err.Error(), "larger tile size") {
		t.Errorf("1 m tiles over a degree: %v", err)
	}
	if _, err := split.ParseGeoJSON([]byte(`{"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[3, 51], [4, 52]]}}`)); err == nil || !strings.Contains(err.Error(), "LineString") {
		t.Errorf("a line as area: %v", err)
	}
}

func TestGridFile(t *testing.T) {
	// Four 1-degree cells; the area touches two of them.
	g, err := split.ParseGridFile([]byte(`{"type": "FeatureCollection", "features": [
	 {"type": "Feature", "id": "A", "properties": {"name": "a", "n": 1}, "geometry": {"type": "Polygon", "coordinates": [[[3, 50], [4, 50], [4, 51], [3, 51], [3, 50]]]}},
	 {"type": "Feature", "id": "B", "properties": {"name": "b", "n": 2}, "geometry": {"type": "Polygon", "coordinates": [[[4, 50], [5, 50], [5, 51], [4, 51], [4, 50]]]}},
	 {"type": "Feature", "id": "C", "properties": {"name": "c", "n": 3}, "geometry": {"type": "Polygon", "coordinates": [[[3, 51], [4, 51], [4, 52], [3, 52], [3, 51]]]}},
	 {"type": "Feature", "id": "D", "properties": {"name": "d", "n": 4}, "geometry": {"type": "Polygon", "coordinates": [[[4, 51], [5, 51], [5, 52], [4, 52], [4, 51]]]}}]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	// The area, in UTM, covers parts of A and B only (it stops short of C).
	pj := transformer(t)
	var ring orb.Ring
	for _, p := range []orb.Point{{3.5, 50.5}, {4.5, 50.5}, {4.5, 50.99}, {3.5, 50.99}, {3.5, 50.5}} {
		c, _ := pj.Forward(proj.NewCoord(p[0], p[1], 0, 0))
		ring = append(ring, orb.Point{c[0], c[1]})
	}
	tl, err := g.Split(utmArea(orb.Polygon{ring}))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(tl); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("tiles %v, want [A B]", got)
	}
	cols, rows, err := tl.Table()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tile_id", "name", "n", "epsg", "west", "south", "east", "north", "geometry"}; !slices.Equal(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
	if r := rows[0]; r[0] != "A" || r[1] != "a" || r[2] != int64(1) || r[3] != int64(4326) || r[4] != 3.0 ||
		r[8] != "POLYGON ((3 50, 4 50, 4 51, 3 51, 3 50))" {
		t.Errorf("first row %v", r)
	}

	if _, err := split.ParseGridFile([]byte(`{"type": "FeatureCollection", "features": [
	 {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [0, 0]]]}}]}`), 0); err == nil || !strings.Contains(err.Error(), "tile 1") {
		t.Errorf("a concave grid tile: %v", err)
	}
}

func TestTableOfSizeGrid(t *testing.T) {
	tl, err := split.Grid{EPSG: utm31, Size: 50_000}.Split(utmArea(rect(400000, 5600000, 500000, 5650000)))
	if err != nil {
		t.Fatal(err)
	}
	cols, rows, err := tl.Table()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tile_id", "epsg", "west", "south", "east", "north", "geometry"}; !slices.Equal(cols, want) {
		t.Errorf("columns %v", cols)
	}
	want := [][]any{
		{"0_0", int64(utm31), 400000.0, 5600000.0, 450000.0, 5650000.0, "POLYGON ((400000 5600000, 450000 5600000, 450000 5650000, 400000 5650000, 400000 5600000))"},
		{"1_0", int64(utm31), 450000.0, 5600000.0, 500000.0, 5650000.0, "POLYGON ((450000 5600000, 500000 5600000, 500000 5650000, 450000 5650000, 450000 5600000))"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows\n%v\nwant\n%v", rows, want)
	}
}

func TestUTMZone(t *testing.T) {
	for _, c := range []struct {
		bbox string
		want int
	}{
		{"3.2,50.9,4.1,51.5", 32631},
		{"-58.5,-34.7,-58.3,-34.5", 32721}, // Buenos Aires
		{"179.5,-17,179.9,-16", 32760},     // Fiji, south of the equator, zone 60
		{"412345,5612345,512345,5712345,EPSG:32631", 32631},
	} {
		got, err := split.UTMZone(mustArea(t)(split.ParseBBox(c.bbox)))
		if err != nil || got != c.want {
			t.Errorf("UTMZone(%s) = %d, %v; want %d", c.bbox, got, err, c.want)
		}
	}
}
